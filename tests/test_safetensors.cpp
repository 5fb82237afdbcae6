// Weights files as data (model/safetensors.h): round trips, and every way a file from someone
// else can lie about its contents refused before a byte is copied.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "model/resnet.h"
#include "model/safetensors.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {

namespace {

// A file's bytes from a header given as JSON and `data_bytes` bytes of data.
std::string file_with_header(const nlohmann::json& header, size_t data_bytes) {
  const std::string text = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
  return bytes + text + std::string(data_bytes, '\x01');
}

nlohmann::json entry(const char* dtype, std::vector<int64_t> shape, uint64_t begin, uint64_t end) {
  return {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {begin, end}}};
}

// The Error message parse_safetensors gives, or "" when it accepts the bytes.
std::string refusal(const std::string& bytes) {
  try {
    parse_safetensors(bytes, "f.safetensors");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

}  // namespace

TEST(Safetensors, TensorsOfEveryDtypeRoundTripWithTheirMetadata) {
  NamedTensors tensors = {{"a", torch::randn({2, 3})},
                          {"b", torch::arange(5, torch::kInt64)},
                          {"c", torch::randn({4}).to(torch::kBFloat16)},
                          {"d", torch::tensor(3.5, torch::kFloat64)},
                          {"e", torch::randint(0, 255, {7}).to(torch::kUInt8)},
                          {"f", torch::empty({0, 4})},
                          {"g", torch::randn({3, 2}).t()}};  // not contiguous
  const Safetensors back = parse_safetensors(safetensors_bytes(tensors, {{"format", "pt"}}), "t");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    const torch::Tensor& read = back.tensors.at(name);
    EXPECT_EQ(read.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(read.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(torch::equal(read, tensor)) << name;
  }
  EXPECT_EQ(back.metadata.at("format"), "pt");
}

TEST(Safetensors, TheHeaderIsPaddedSoTheDataIsAligned) {
  const std::string bytes = safetensors_bytes({{"x", torch::ones({3})}});
  uint64_t header = 0;
  for (int i = 7; i >= 0; --i) header = (header << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(header % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + header + 12);
}

TEST(Safetensors, FilesThatLieAboutTheirContentsAreRefused) {
  EXPECT_NE(refusal("1234"), "");                                          // shorter than the length field
  EXPECT_NE(refusal(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f", 8)), "");  // a header of 2^63 bytes
  EXPECT_NE(refusal(file_with_header("[1, 2]", 0)), "");                    // not an object
  std::string not_json = file_with_header(nlohmann::json::object(), 0);
  not_json.replace(8, 2, "{x");
  EXPECT_NE(refusal(not_json), "");
  using J = nlohmann::json;
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {2}, 0, 16)}}, 8)), "");        // past the end
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {4}, 0, 8)}}, 8)), "");         // shape vs bytes
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {1u << 31, 1u << 31}, 0, 8)}}, 8)), "");  // overflowing shape
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("Q7", {2}, 0, 8)}}, 8)), "");          // unknown dtype
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {2}, 8, 0)}}, 8)), "");         // reversed offsets
  EXPECT_NE(refusal(file_with_header(J{{"w", {{"dtype", "F32"}, {"shape", {-2}}, {"data_offsets", {0, 8}}}}}, 8)), "");
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {2}, 0, 8)}, {"v", entry("F32", {2}, 4, 12)}}, 12)), "");  // overlap
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {1}, 4, 8)}}, 8)), "");         // a gap
  EXPECT_NE(refusal(file_with_header(J{{"w", entry("F32", {1}, 0, 4)}}, 8)), "");         // bytes left over
  EXPECT_NE(refusal(file_with_header(J{{"__metadata__", {{"k", 3}}}}, 0)), "");           // metadata not strings
  EXPECT_EQ(refusal(file_with_header(J{{"w", entry("F32", {2}, 0, 8)}}, 8)), "");          // and the honest one is read
}

TEST(Safetensors, EveryTruncationOfARealFileIsAnErrorNotACrash) {
  const std::string bytes = safetensors_bytes({{"a", torch::randn({5, 5})}, {"b", torch::arange(3)}}, {{"k", "v"}});
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_NE(refusal(bytes.substr(0, n)), "") << n;
}

TEST(Safetensors, AModelLoadsOnlyTensorsOfItsOwnNamesAndShapes) {
  ResNet source("resnet18", 5), target("resnet18", 5);
  const Safetensors file = parse_safetensors(safetensors_bytes(module_tensors(*source)), "m");
  EXPECT_TRUE(file.tensors.count("layer1.0.conv1.weight"));  // torchvision's names
  EXPECT_TRUE(file.tensors.count("bn1.running_mean"));
  load_module_tensors(*target, file, "m");
  EXPECT_TRUE(torch::equal(target->fc->weight, source->fc->weight));
  EXPECT_TRUE(torch::equal(target->bn1->running_var, source->bn1->running_var));

  auto message = [&](const Safetensors& bad) {
    ResNet model("resnet18", 5);
    const torch::Tensor before = model->fc->weight.clone();
    try {
      load_module_tensors(*model, bad, "m.safetensors");
    } catch (const Error& e) {
      EXPECT_TRUE(torch::equal(model->fc->weight, before)) << "nothing is copied before every check passed";
      return std::string(e.what());
    }
    return std::string();
  };
  ResNet thousand("resnet18", 1000);
  EXPECT_NE(message(parse_safetensors(safetensors_bytes(module_tensors(*thousand)), "m")).find("fc.weight"),
            std::string::npos);
  Safetensors small_conv = file;
  small_conv.tensors["conv1.weight"] = torch::zeros({64, 3, 3, 3});
  EXPECT_NE(message(small_conv).find("[64, 3, 7, 7]"), std::string::npos);
  Safetensors missing = file;
  missing.tensors.erase("layer4.1.bn2.bias");
  EXPECT_NE(message(missing).find("layer4.1.bn2.bias"), std::string::npos);
  Safetensors extra = file;
  extra.tensors["layer5.weight"] = torch::zeros({1});
  EXPECT_NE(message(extra).find("layer5.weight"), std::string::npos);
  Safetensors half = file;
  half.tensors["fc.bias"] = half.tensors["fc.bias"].to(torch::kFloat16);
  EXPECT_NE(message(half).find("F16"), std::string::npos);
  ResNet deeper("resnet34", 5);
  EXPECT_NE(message(parse_safetensors(safetensors_bytes(module_tensors(*deeper)), "m")), "");
}

TEST(Safetensors, OnlyRegularFilesOfBoundedSizeAreRead) {
  testing::ScratchDir dir;
  EXPECT_THROW(read_safetensors("/dev/zero"), Error);
  EXPECT_THROW(read_safetensors(dir.path()), Error);
  EXPECT_THROW(read_safetensors(dir / "none.safetensors"), Error);
  const std::string bytes = safetensors_bytes({{"a", torch::ones({100})}});
  testing::write_bytes(dir / "a.safetensors", std::vector<uint8_t>(bytes.begin(), bytes.end()));
  EXPECT_EQ(read_safetensors(dir / "a.safetensors").tensors.at("a").numel(), 100);
  EXPECT_THROW(read_safetensors(dir / "a.safetensors", 100), Error);
}
}  // namespace histotrain
