// State dicts saved by Python's torch.save, read as data (model/pytorch_weights.h): a file
// written by hand opcode by opcode, one written by LibTorch's own pickler, and every way such a
// file can ask for more than tensors (code, cycles, views past their storage, huge claims)
// refused with a clear Error, never run, never a crash. Python's files: test_parity.cpp.
#include <gtest/gtest.h>

#include <torch/csrc/jit/serialization/pickle.h>

#include <cstring>
#include <fstream>
#include <map>

#include "core/initial_weights.h"
#include "model/pytorch_weights.h"
#include "model/resnet.h"
#include "test_util.h"
#include "util/errors.h"

namespace histotrain {

namespace {

using namespace std::string_literals;

void put16(std::string& s, uint32_t v) {
  s += static_cast<char>(v & 0xff);
  s += static_cast<char>((v >> 8) & 0xff);
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xffff);
  put16(s, v >> 16);
}

struct Record {
  std::string name, data;
};

// A zip of stored records, as PyTorch's writer lays them out (local headers, directory, end).
std::string zip_of(const std::vector<Record>& records, uint16_t method = 0) {
  std::string out, directory;
  for (const Record& r : records) {
    const auto offset = static_cast<uint32_t>(out.size()), size = static_cast<uint32_t>(r.data.size());
    put32(out, 0x04034b50);
    for (uint32_t v : {20u, 0u, uint32_t{method}, 0u, 0u}) put16(out, v);
    for (uint32_t v : {0u, size, size}) put32(out, v);
    put16(out, static_cast<uint32_t>(r.name.size()));
    put16(out, 0);
    out += r.name + r.data;
    put32(directory, 0x02014b50);
    for (uint32_t v : {20u, 20u, 0u, uint32_t{method}, 0u, 0u}) put16(directory, v);
    for (uint32_t v : {0u, size, size}) put32(directory, v);
    for (uint32_t v : {static_cast<uint32_t>(r.name.size()), 0u, 0u, 0u, 0u}) put16(directory, v);
    put32(directory, 0);
    put32(directory, offset);
    directory += r.name;
  }
  const auto directory_offset = static_cast<uint32_t>(out.size());
  out += directory;
  put32(out, 0x06054b50);
  for (uint32_t v : {0u, 0u, static_cast<uint32_t>(records.size()), static_cast<uint32_t>(records.size())})
    put16(out, v);
  put32(out, static_cast<uint32_t>(directory.size()));
  put32(out, directory_offset);
  put16(out, 0);
  return out;
}

// Pickle opcodes, spelled out.
std::string text(const std::string& s) {
  std::string op = "X";
  put32(op, static_cast<uint32_t>(s.size()));
  return op + s;
}
std::string small(int v) { return std::string("K") + static_cast<char>(v); }
const std::string kOrderedDict = "ccollections\nOrderedDict\n)R";

// {"w": a view of storage "0" (`elements` floats) at `offset` with `sizes` and `strides`}.
std::string state_dict_pickle(int elements, int offset, std::vector<int> sizes, std::vector<int> strides) {
  std::string p = "\x80\x02" + kOrderedDict + "q\x00("s + text("w") + "ctorch._utils\n_rebuild_tensor_v2\n(";
  p += "(" + text("storage") + "ctorch\nFloatStorage\n" + text("0") + text("cpu") + small(elements) + "tQ";
  p += small(offset) + "(";
  for (int s : sizes) p += small(s);
  p += "t(";
  for (int s : strides) p += small(s);
  p += "t\x89" + kOrderedDict + "tRu.";
  return p;
}

std::string floats(int count) {
  std::string bytes(static_cast<size_t>(count) * 4, '\0');
  for (int i = 0; i < count; ++i) {
    const float v = static_cast<float>(i);
    std::memcpy(&bytes[static_cast<size_t>(i) * 4], &v, 4);
  }
  return bytes;
}

std::string weights_file(const std::string& pickle, const std::string& storage = floats(6)) {
  return zip_of({{"w/data.pkl", pickle}, {"w/data/0", storage}, {"w/version", "3\n"}});
}

// parse_pytorch_state_dict's Error message, or "" when it accepts the bytes.
std::string refusal(const std::string& bytes) {
  try {
    parse_pytorch_state_dict(bytes, "w.pth");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

std::string pickle_only(const std::string& pickle) { return refusal(weights_file(pickle)); }

}  // namespace

TEST(PytorchWeights, ReadsAStateDictWrittenOpcodeByOpcode) {
  const NamedTensors t = parse_pytorch_state_dict(weights_file(state_dict_pickle(6, 0, {2, 3}, {3, 1})), "w.pth");
  ASSERT_EQ(t.size(), 1u);
  EXPECT_EQ(t[0].first, "w");
  EXPECT_TRUE(torch::equal(t[0].second, torch::arange(6, torch::kFloat32).view({2, 3})));
  // A transposed view keeps its strides; an offset view starts where it says.
  const NamedTensors transposed =
      parse_pytorch_state_dict(weights_file(state_dict_pickle(6, 0, {3, 2}, {1, 3})), "w.pth");
  EXPECT_TRUE(torch::equal(transposed[0].second, torch::arange(6, torch::kFloat32).view({2, 3}).t()));
  const NamedTensors offset = parse_pytorch_state_dict(weights_file(state_dict_pickle(6, 2, {2, 2}, {2, 1})), "w.pth");
  EXPECT_TRUE(torch::equal(offset[0].second, torch::arange(2, 6, torch::kFloat32).view({2, 2})));
  EXPECT_TRUE(offset[0].second.is_contiguous());
}

TEST(PytorchWeights, ReadsWhatLibTorchsPicklerWrites) {
  c10::Dict<std::string, at::Tensor> dict;
  torch::manual_seed(3);
  const auto a = torch::randn({4, 5}), b = torch::arange(7), c = torch::randn({3, 4}).t(),
             d = torch::randn({6}).to(torch::kHalf);
  dict.insert("a", a);
  dict.insert("layer.b", b);
  dict.insert("c", c);
  dict.insert("d", d);
  const std::vector<char> bytes = torch::jit::pickle_save(dict);
  const NamedTensors t = parse_pytorch_state_dict(std::string(bytes.begin(), bytes.end()), "p.pth");
  ASSERT_EQ(t.size(), 4u);
  std::map<std::string, torch::Tensor> by_name(t.begin(), t.end());
  EXPECT_TRUE(torch::equal(by_name.at("a"), a));
  EXPECT_TRUE(torch::equal(by_name.at("layer.b"), b));
  EXPECT_TRUE(torch::equal(by_name.at("c"), c));
  EXPECT_TRUE(torch::equal(by_name.at("d"), d));
}

TEST(PytorchWeights, OnlyTheCallablesOfAStateDictMayBeNamed) {
  EXPECT_NE(pickle_only("\x80\x02" "cos\nsystem\n(" + text("touch /tmp/x") + "tR.").find("'os.system'"),
            std::string::npos);
  EXPECT_NE(pickle_only("\x80\x02" "cbuiltins\neval\n.").find("'builtins.eval'"), std::string::npos);
  EXPECT_NE(pickle_only("\x80\x02" "ctorch.nn.modules.linear\nLinear\n.").find("save model.state_dict()"),
            std::string::npos);
  // An allowed name called with what it does not take.
  EXPECT_NE(pickle_only("\x80\x02" + std::string("ccollections\nOrderedDict\n(") + small(1) + "tR.").find("arguments"),
            std::string::npos);
  // Opcodes a state dict never needs: INST, OBJ, NEWOBJ, EXT1.
  for (const std::string op : {"i", "o", "\x81", "\x82"})
    EXPECT_NE(pickle_only("\x80\x02" + op + ".").find("opcode"), std::string::npos) << int(op[0]);
}

TEST(PytorchWeights, ViewsAndStoragesThatLieAreRefused) {
  EXPECT_NE(pickle_only(state_dict_pickle(6, 1, {2, 3}, {3, 1})).find("past the end"), std::string::npos);
  EXPECT_NE(pickle_only(state_dict_pickle(6, 0, {2, 4}, {3, 1})).find("past the end"), std::string::npos);
  EXPECT_NE(pickle_only(state_dict_pickle(6, 0, {2, 3}, {3})).find("strides"), std::string::npos);
  // The storage claims more elements than its record holds.
  EXPECT_NE(refusal(weights_file(state_dict_pickle(6, 0, {2, 3}, {3, 1}), floats(5))).find("need"), std::string::npos);
  // Its record is missing.
  EXPECT_NE(refusal(zip_of({{"w/data.pkl", state_dict_pickle(6, 0, {2, 3}, {3, 1})}})).find("no record 'w/data/0'"),
            std::string::npos);
}

TEST(PytorchWeights, ContainersCannotFormCyclesOrNestDeeply) {
  EXPECT_NE(pickle_only("\x80\x02]q\x00h\x00"s "a.").find("inside itself"), std::string::npos);
  // A list placed inside another, then changed.
  EXPECT_NE(pickle_only("\x80\x02]q\x00]h\x00"s "ah\x00"s + small(1) + "a.").find("after placing"), std::string::npos);
  std::string deep = "\x80\x02";
  for (int i = 0; i < 100; ++i) deep += "]";
  for (int i = 0; i < 99; ++i) deep += "a";
  EXPECT_NE(pickle_only(deep + ".").find("deep"), std::string::npos);
}

TEST(PytorchWeights, HugeClaimsAreRefusedBeforeAllocating) {
  EXPECT_NE(pickle_only("\x80\x02X\xff\xff\xff\xff.").find("cut short"), std::string::npos);
  EXPECT_NE(pickle_only("\x80\x02" + std::string(2 << 20, 'N') + ".").find("more than"), std::string::npos);
  EXPECT_NE(pickle_only("\x80\x02" "N" + std::string(2 << 20, '\x94') + ".").find("more than"), std::string::npos);
  // A tensor of 2^60 elements over a tiny storage.
  std::string huge = "\x80\x02}(" + text("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + text("storage") +
                     "ctorch\nFloatStorage\n" + text("0") + text("cpu") + small(6) + "tQ" + small(0) +
                     "(\x8a\x08" + std::string("\x00\x00\x00\x00\x00\x00\x00\x10", 8) + "t(" + small(0) + "t\x89}tRu.";
  EXPECT_NE(pickle_only(huge).find("out of range"), std::string::npos);
}

TEST(PytorchWeights, FilesThatAreNotStateDictsSayWhatToSaveInstead) {
  const std::string sd = state_dict_pickle(6, 0, {2, 3}, {3, 1});
  EXPECT_NE(refusal(zip_of({{"m/data.pkl", sd}, {"m/data/0", floats(6)}, {"m/code/__torch__.py", "def f(): pass"},
                            {"m/constants.pkl", "\x80\x02)."}}))
                .find("TorchScript"),
            std::string::npos);
  EXPECT_NE(refusal(zip_of({{"w/data.pkl", sd}, {"w/data/0", floats(6)}}, 8)).find("compressed"), std::string::npos);
  EXPECT_NE(refusal(std::string("\x80\x02\x8a\x0a", 4) + std::string(40, '\0')).find("legacy"), std::string::npos);
  EXPECT_NE(refusal(zip_of({{"w/other", "x"}})).find("without data.pkl"), std::string::npos);
  EXPECT_NE(pickle_only("\x80\x02" + small(5) + ".").find("not a state dict"), std::string::npos);
}

// Every truncation and many one-byte changes of a valid file: parsed or refused, never a crash
// or a read outside the bytes (run under ASan in the sanitized build).
TEST(PytorchWeights, DamagedCopiesAreParsedOrRefusedNeverCrash) {
  const std::string good = weights_file(state_dict_pickle(6, 0, {2, 3}, {3, 1}));
  int refused = 0;
  for (size_t size = 0; size < good.size(); ++size) refused += !refusal(good.substr(0, size)).empty();
  EXPECT_EQ(refused, static_cast<int>(good.size()));  // a zip's directory is at its end
  for (size_t at = 0; at < good.size(); ++at)
    for (const unsigned char change : {0x01, 0x80, 0xff}) {
      std::string bad = good;
      bad[at] = static_cast<char>(static_cast<unsigned char>(bad[at]) ^ change);
      refusal(bad);
    }
}

TEST(InitialWeights, TellsTheArchitectureFromTheNames) {
  for (const std::string& arch : supported_archs()) EXPECT_EQ(architecture_of(module_tensors(*ResNet(arch, 3))), arch);
  EXPECT_EQ(architecture_of({{"conv1.weight", torch::zeros({1})}}), "");
}

TEST(InitialWeights, ReplacesAHeadOfAnotherClassCountAndRefusesOtherMismatches) {
  testing::ScratchDir dir;
  torch::manual_seed(1);
  ResNet imagenet("resnet18", 1000);
  // A DataParallel model's names, in a .safetensors file.
  NamedTensors prefixed;
  for (auto& [name, tensor] : module_tensors(*imagenet)) prefixed.emplace_back("module." + name, tensor);
  std::ofstream(dir / "r18.safetensors", std::ios::binary) << safetensors_bytes(prefixed);
  torch::manual_seed(2);
  ResNet model("resnet18", 5);
  const torch::Tensor fresh_head = model->fc->weight.clone();
  const InitialWeights report = load_initial_weights(model, (dir / "r18.safetensors").string());
  EXPECT_EQ(report.format, "safetensors");
  EXPECT_EQ(report.stripped_prefix, "module.");
  EXPECT_EQ(report.file_classes, 1000);
  EXPECT_EQ(report.tensors, static_cast<int64_t>(module_tensors(*model).size()) - 2);
  EXPECT_TRUE(torch::equal(model->fc->weight, fresh_head));
  EXPECT_TRUE(torch::equal(model->layer3->ptr<ResidualBlockImpl>(1)->conv2->weight,
                           imagenet->layer3->ptr<ResidualBlockImpl>(1)->conv2->weight));
  EXPECT_TRUE(torch::equal(model->bn1->running_var, imagenet->bn1->running_var));

  // A ResNet-50's weights in a ResNet-18: every mismatch listed, and the architecture named.
  std::ofstream(dir / "r50.safetensors", std::ios::binary) << safetensors_bytes(module_tensors(*ResNet("resnet50", 5)));
  try {
    load_initial_weights(model, (dir / "r50.safetensors").string());
    FAIL() << "a ResNet-50 loaded into a ResNet-18";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the file holds a resnet50 (use --arch resnet50)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layer1.0.conv3.weight"), std::string::npos) << e.what();
  }
  // A backbone without its head.
  NamedTensors backbone;
  for (auto& t : module_tensors(*imagenet))
    if (t.first.rfind("fc.", 0) != 0) backbone.push_back(t);
  std::ofstream(dir / "backbone.safetensors", std::ios::binary) << safetensors_bytes(backbone);
  EXPECT_FALSE(load_initial_weights(model, (dir / "backbone.safetensors").string()).head_in_file);
  EXPECT_THROW(load_initial_weights(model, (dir / "missing.pth").string()), Error);
}

}  // namespace histotrain
