// Options that are more than an enum but still one word on the command line ("hed:0.1"): a type
// with `static std::optional<T> parse(std::string_view)`, `std::string text() const` (what parse
// reads back) and `static const char* example()` (a valid text other than the default, for
// tests). Parsed once where the text enters (a flag, a saved configuration), typed inside.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

namespace histotrain {

template <class T, class = void>
struct HasTextForm : std::false_type {};
template <class T>
struct HasTextForm<T, std::void_t<decltype(T::parse(std::string_view{})), decltype(std::declval<const T&>().text())>>
    : std::true_type {};
template <class T>
constexpr bool has_text_form = HasTextForm<T>::value;

}  // namespace histotrain
