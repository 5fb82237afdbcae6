// Enums spelled the way users type them. Each enum that a flag or a file names lists its spellings
// once, in a specialisation of Spellings next to the enum:
//
//   template <> struct Spellings<Shape> {
//     static constexpr std::pair<Shape, const char*> all[] = {{Shape::onecycle, "onecycle"}, ...};
//   };
//
// Parsing happens once, where text enters (the command line, a JSON file); inside, the program
// compares enums, and the spelling comes back for messages and JSON.
#pragma once
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace histotrain {

template <class E>
struct Spellings;  // specialised for each enum with names

template <class E>
std::string spelling(E value) {
  for (const auto& [e, name] : Spellings<E>::all)
    if (e == value) return name;
  return "?";
}

template <class E>
std::optional<E> from_spelling(std::string_view text) {
  for (const auto& [e, name] : Spellings<E>::all)
    if (text == name) return e;
  return std::nullopt;
}

// "onecycle or cosine", "none, bf16, fp16 or auto": for messages.
template <class E>
std::string spelling_choices() {
  std::string text;
  constexpr size_t count = std::size(Spellings<E>::all);
  for (size_t i = 0; i < count; ++i) {
    if (i > 0) text += i + 1 == count ? " or " : ", ";
    text += Spellings<E>::all[i].second;
  }
  return text;
}

}  // namespace histotrain
