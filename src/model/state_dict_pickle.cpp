#include "model/state_dict_pickle.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "util/errors.h"

namespace histotrain {

namespace {

constexpr int kMaxDepth = 32;          // a state dict nests 4 deep; a hostile file is not let recurse
constexpr int kMaxDims = 16;
constexpr int64_t kMaxElements = int64_t{1} << 40;
// A ResNet-152 state dict makes about 15,000 values; this bounds the memory a hostile file can
// make the reader spend (a few hundred bytes a value), whatever its size.
constexpr size_t kMaxValues = size_t{1} << 20;

enum class Kind { none, boolean, integer, real, text, tuple, list, dict, global, storage, tensor };

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  explicit Value(Kind k) : kind(k) {}
  Kind kind;
  int64_t integer = 0;        // integer, boolean
  double real = 0;
  std::string text;           // text; global: "module name"
  std::vector<ValuePtr> items;  // tuple, list; dict: key, value, key, value, ...
  PickledTensor tensor;       // storage (storage, dtype, storage_elements) and tensor
  int depth = 0;              // containers inside, itself included
  bool contained = false;     // inside another container: no longer changed
};

const char* kind_name(Kind k) {
  static const char* const names[] = {"None", "a bool", "an integer", "a float", "a string", "a tuple",
                                      "a list", "a dict", "a Python object", "a storage", "a tensor"};
  return names[static_cast<int>(k)];
}

// The storage types torch.save names (torch.FloatStorage, ...), by their element type.
const std::map<std::string, torch::ScalarType>& storage_types() {
  static const std::map<std::string, torch::ScalarType> types = {
      {"FloatStorage", torch::kFloat32}, {"DoubleStorage", torch::kFloat64}, {"HalfStorage", torch::kFloat16},
      {"BFloat16Storage", torch::kBFloat16}, {"LongStorage", torch::kInt64}, {"IntStorage", torch::kInt32},
      {"ShortStorage", torch::kInt16}, {"CharStorage", torch::kInt8}, {"ByteStorage", torch::kUInt8},
      {"BoolStorage", torch::kBool}};
  return types;
}

class Unpickler {
 public:
  Unpickler(std::string_view bytes, const std::string& source) : in_(bytes), source_(source) {}
  ValuePtr run();

 private:
  [[noreturn]] void fail(const std::string& why) const {
    throw Error(source_ + ": its data.pkl " + why + " (at byte " + std::to_string(at_) + ")");
  }
  std::string_view take(uint64_t n);
  uint64_t little_endian(int width);
  std::string line();
  ValuePtr make(Kind kind) {
    if (++made_ > kMaxValues) fail("holds more than " + std::to_string(kMaxValues) + " values");
    return std::make_shared<Value>(kind);
  }
  void push(ValuePtr v) {
    if (stack_.size() >= kMaxValues) fail("stacks more than " + std::to_string(kMaxValues) + " values");
    stack_.push_back(std::move(v));
  }
  ValuePtr pop();
  std::vector<ValuePtr> pop_to_mark();
  ValuePtr scalar(Kind kind, int64_t integer = 0);
  ValuePtr tuple(std::vector<ValuePtr> items);
  void insert(const ValuePtr& container, const std::vector<ValuePtr>& items);
  ValuePtr global(const std::string& module, const std::string& name);
  ValuePtr reduce(const Value& callable, const Value& args);
  ValuePtr rebuild_tensor(const Value& args);
  ValuePtr storage(const Value& pid);
  bool step(unsigned char op);

  std::string_view in_;
  const std::string& source_;
  uint64_t at_ = 0;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  size_t made_ = 0;
};

std::string_view Unpickler::take(uint64_t n) {
  if (n > in_.size() - at_) fail("is cut short");
  const std::string_view part = in_.substr(at_, n);
  at_ += n;
  return part;
}

uint64_t Unpickler::little_endian(int width) {
  const std::string_view b = take(static_cast<uint64_t>(width));
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) value = value << 8 | static_cast<unsigned char>(b[i]);
  return value;
}

// GLOBAL's "module\n" and "name\n": short, printable.
std::string Unpickler::line() {
  std::string text;
  for (;;) {
    const char c = take(1)[0];
    if (c == '\n') return text;
    if (c < 0x20 || c > 0x7e || text.size() >= 200) fail("names a Python object with an unreadable name");
    text += c;
  }
}

ValuePtr Unpickler::pop() {
  if (stack_.empty() || (!marks_.empty() && marks_.back() == stack_.size())) fail("takes from an empty stack");
  ValuePtr v = std::move(stack_.back());
  stack_.pop_back();
  return v;
}

std::vector<ValuePtr> Unpickler::pop_to_mark() {
  if (marks_.empty()) fail("closes a group it never opened");
  std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
  stack_.resize(marks_.back());
  marks_.pop_back();
  return items;
}

ValuePtr Unpickler::scalar(Kind kind, int64_t integer) {
  auto v = make(kind);
  v->integer = integer;
  return v;
}

ValuePtr Unpickler::tuple(std::vector<ValuePtr> items) {
  auto t = make(Kind::tuple);
  insert(t, items);
  return t;
}

// Puts `items` into a new or unshared container. A container already inside another is never
// changed again, and none goes into itself: no cycles, and the depth is known.
void Unpickler::insert(const ValuePtr& container, const std::vector<ValuePtr>& items) {
  if (container->contained) fail("changes a container after placing it inside another");
  for (const ValuePtr& item : items) {
    if (item == container) fail("places a container inside itself");
    item->contained = true;
    container->depth = std::max(container->depth, item->depth + 1);
    container->items.push_back(item);
  }
  if (container->depth > kMaxDepth) fail("nests containers more than " + std::to_string(kMaxDepth) + " deep");
}

ValuePtr Unpickler::global(const std::string& module, const std::string& name) {
  const bool allowed = (module == "collections" && name == "OrderedDict") ||
                       (module == "torch._utils" && (name == "_rebuild_tensor_v2" || name == "_rebuild_parameter")) ||
                       (module == "torch.jit._pickle" && name == "restore_type_tag") ||
                       (module == "torch" && storage_types().count(name));
  if (!allowed) {
    const bool model = module.rfind("torch.nn", 0) == 0 || module == "__main__" || module.rfind("torchvision", 0) == 0;
    fail("asks for the Python object '" + module + "." + name + "', which histotrain does not load" +
         (model ? ": the file holds a whole pickled model; save model.state_dict() instead" : ""));
  }
  auto g = make(Kind::global);
  g->text = module + " " + name;
  return g;
}

// The persistent id torch.save writes for a storage: ('storage', torch.XStorage, key, location, elements).
ValuePtr Unpickler::storage(const Value& pid) {
  const auto& p = pid.items;
  if (pid.kind != Kind::tuple || p.size() != 5 || p[0]->kind != Kind::text || p[0]->text != "storage" ||
      p[1]->kind != Kind::global || p[2]->kind != Kind::text || p[4]->kind != Kind::integer)
    fail("refers to something other than a tensor storage");
  const std::string type = p[1]->text.substr(p[1]->text.find(' ') + 1);
  const auto dtype = storage_types().find(type);
  if (p[1]->text.rfind("torch ", 0) != 0 || dtype == storage_types().end()) fail("names an unknown storage type");
  const std::string& key = p[2]->text;
  if (key.empty() || key.size() > 64 ||
      !std::all_of(key.begin(), key.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)); }))
    fail("names a storage record that is not a short alphanumeric key");
  if (p[4]->integer < 0 || p[4]->integer > kMaxElements) fail("claims a storage of " + std::to_string(p[4]->integer) + " elements");
  auto s = make(Kind::storage);
  s->tensor.storage = key;
  s->tensor.dtype = dtype->second;
  s->tensor.storage_elements = p[4]->integer;
  return s;
}

// _rebuild_tensor_v2(storage, offset, sizes, strides, requires_grad, hooks[, metadata]): checked
// so that every element of the view lies inside its storage.
ValuePtr Unpickler::rebuild_tensor(const Value& args) {
  const auto& a = args.items;
  auto integers = [&](const Value& v) {
    std::vector<int64_t> out;
    if (v.kind != Kind::tuple || v.items.size() > kMaxDims) fail("gives a tensor a shape that is not a short tuple");
    for (const auto& i : v.items) {
      if (i->kind != Kind::integer || i->integer < 0 || i->integer > kMaxElements)
        fail("gives a tensor a size or stride out of range");
      out.push_back(i->integer);
    }
    return out;
  };
  if (a.size() < 6 || a.size() > 7 || a[0]->kind != Kind::storage || a[1]->kind != Kind::integer ||
      a[4]->kind != Kind::boolean)
    fail("rebuilds a tensor from arguments of the wrong kinds");
  if (a[5]->kind != Kind::dict || !a[5]->items.empty()) fail("attaches backward hooks to a tensor");
  auto t = make(Kind::tensor);
  t->tensor = a[0]->tensor;
  t->tensor.offset = a[1]->integer;
  t->tensor.sizes = integers(*a[2]);
  t->tensor.strides = integers(*a[3]);
  const PickledTensor& d = t->tensor;
  if (d.strides.size() != d.sizes.size()) fail("gives a tensor as many strides as sizes, not");
  unsigned __int128 elements = 1, last = static_cast<unsigned __int128>(d.offset);
  for (size_t k = 0; k < d.sizes.size(); ++k) {
    elements *= static_cast<unsigned __int128>(d.sizes[k]);
    if (elements > kMaxElements) fail("claims a tensor of more than 2^40 elements");
    if (d.sizes[k] > 0) last += static_cast<unsigned __int128>(d.sizes[k] - 1) * static_cast<unsigned __int128>(d.strides[k]);
  }
  if (elements > 0 && last >= static_cast<unsigned __int128>(d.storage_elements))
    fail("views elements past the end of storage '" + d.storage + "'");
  return t;
}

ValuePtr Unpickler::reduce(const Value& callable, const Value& args) {
  if (callable.kind != Kind::global || args.kind != Kind::tuple) fail("calls something that is not a function");
  if (callable.text == "collections OrderedDict") {
    if (!args.items.empty()) fail("builds an OrderedDict from arguments");
    return make(Kind::dict);
  }
  if (callable.text == "torch._utils _rebuild_tensor_v2") return rebuild_tensor(args);
  if (callable.text == "torch.jit._pickle restore_type_tag") {  // (value, type name): LibTorch's typed containers
    if (args.items.size() != 2 || args.items[1]->kind != Kind::text) fail("tags a value's type wrongly");
    return args.items[0];
  }
  if (callable.text == "torch._utils _rebuild_parameter") {  // (tensor, requires_grad, hooks)
    if (args.items.size() != 3 || args.items[0]->kind != Kind::tensor) fail("rebuilds a parameter from no tensor");
    auto t = make(Kind::tensor);
    t->tensor = args.items[0]->tensor;
    return t;
  }
  fail("calls '" + callable.text + "'");
}

// One opcode; false at STOP. An opcode switch, and the one function here over 80 lines on
// purpose: one case per opcode that torch.save's pickles use, so the whole instruction set this
// reader accepts is read in one place; any other opcode is refused by name.
bool Unpickler::step(unsigned char op) {
  auto signed_le = [&](int width) {
    const uint64_t raw = little_endian(width);
    const int shift = 64 - 8 * width;
    return width == 0 ? int64_t{0} : static_cast<int64_t>(raw << shift) >> shift;
  };
  auto memo_get = [&](uint64_t key) {
    const auto found = memo_.find(key);
    if (found == memo_.end()) fail("refers back to a value it never stored");
    push(found->second);
  };
  auto memo_put = [&](uint64_t key) {
    if (stack_.empty()) fail("stores a value from an empty stack");
    if (memo_.size() >= kMaxValues && !memo_.count(key)) fail("stores more than " + std::to_string(kMaxValues) + " values");
    memo_[key] = stack_.back();
  };
  auto text = [&](uint64_t size) {
    auto v = make(Kind::text);
    v->text = std::string(take(size));
    push(v);
  };
  switch (op) {
    case 0x80: {  // PROTO
      const uint64_t protocol = little_endian(1);
      if (protocol < 2 || protocol > 5) fail("uses pickle protocol " + std::to_string(protocol));
      return true;
    }
    case 0x95: take(8); return true;                                // FRAME: a length hint
    case '.': return false;                                         // STOP
    case '(': marks_.push_back(stack_.size()); return true;         // MARK
    case 'N': push(scalar(Kind::none)); return true;
    case 0x88: push(scalar(Kind::boolean, 1)); return true;         // NEWTRUE
    case 0x89: push(scalar(Kind::boolean, 0)); return true;         // NEWFALSE
    case 'K': push(scalar(Kind::integer, static_cast<int64_t>(little_endian(1)))); return true;  // BININT1
    case 'M': push(scalar(Kind::integer, static_cast<int64_t>(little_endian(2)))); return true;  // BININT2
    case 'J': push(scalar(Kind::integer, signed_le(4))); return true;                            // BININT
    case 0x8a: {  // LONG1
      const uint64_t width = little_endian(1);
      if (width > 8) fail("holds an integer wider than 64 bits");
      push(scalar(Kind::integer, signed_le(static_cast<int>(width))));
      return true;
    }
    case 'G': {  // BINFLOAT, big-endian
      const std::string_view b = take(8);
      uint64_t raw = 0;
      for (char c : b) raw = raw << 8 | static_cast<unsigned char>(c);
      auto v = scalar(Kind::real);
      std::memcpy(&v->real, &raw, 8);
      push(v);
      return true;
    }
    case 'X': text(little_endian(4)); return true;     // BINUNICODE
    case 0x8c: text(little_endian(1)); return true;    // SHORT_BINUNICODE
    case 'c': {  // GLOBAL
      const std::string module = line();
      push(global(module, line()));
      return true;
    }
    case 0x93: {  // STACK_GLOBAL
      const ValuePtr name = pop(), module = pop();
      if (name->kind != Kind::text || module->kind != Kind::text) fail("names a Python object by non-strings");
      push(global(module->text, name->text));
      return true;
    }
    case 'q': memo_put(little_endian(1)); return true;          // BINPUT
    case 'r': memo_put(little_endian(4)); return true;          // LONG_BINPUT
    case 0x94: memo_put(memo_.size()); return true;             // MEMOIZE
    case 'h': memo_get(little_endian(1)); return true;          // BINGET
    case 'j': memo_get(little_endian(4)); return true;          // LONG_BINGET
    case ')': push(tuple({})); return true;                     // EMPTY_TUPLE
    case 't': push(tuple(pop_to_mark())); return true;          // TUPLE
    case 0x85: case 0x86: case 0x87: {                          // TUPLE1, TUPLE2, TUPLE3
      std::vector<ValuePtr> items(op - 0x84);
      for (size_t k = items.size(); k-- > 0;) items[k] = pop();
      push(tuple(std::move(items)));
      return true;
    }
    case ']': push(make(Kind::list)); return true;  // EMPTY_LIST
    case '}': push(make(Kind::dict)); return true;  // EMPTY_DICT
    case 'l': case 'd': {                                              // LIST, DICT
      auto items = pop_to_mark();
      auto c = make(op == 'l' ? Kind::list : Kind::dict);
      if (op == 'd' && items.size() % 2) fail("builds a dict from an odd number of items");
      insert(c, items);
      push(c);
      return true;
    }
    case 'a': case 'e': case 's': case 'u': {  // APPEND, APPENDS, SETITEM, SETITEMS
      std::vector<ValuePtr> items;
      if (op == 'a') items = {pop()};
      if (op == 's') {
        ValuePtr value = pop(), key = pop();
        items = {key, value};
      }
      if (op == 'e' || op == 'u') items = pop_to_mark();
      if (stack_.empty()) fail("adds items to nothing");
      const ValuePtr& target = stack_.back();
      if (target->kind != ((op == 'a' || op == 'e') ? Kind::list : Kind::dict)) fail("adds items to " + std::string(kind_name(target->kind)));
      if (target->kind == Kind::dict && items.size() % 2) fail("adds a key without a value");
      insert(target, items);
      return true;
    }
    case 'Q': {  // BINPERSID
      const ValuePtr pid = pop();
      push(storage(*pid));
      return true;
    }
    case 'R': {  // REDUCE
      const ValuePtr args = pop(), callable = pop();
      push(reduce(*callable, *args));
      return true;
    }
    case 'b': {  // BUILD: an OrderedDict's attributes (its _metadata), which a state dict does not need
      const ValuePtr state = pop();
      if (stack_.empty() || stack_.back()->kind != Kind::dict) fail("sets attributes of something other than a dict");
      return true;
    }
    default: {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", op);
      fail(std::string("holds pickle opcode ") + hex + ", which a state dict does not need");
    }
  }
}

ValuePtr Unpickler::run() {
  while (step(static_cast<unsigned char>(take(1)[0]))) {
  }
  if (stack_.size() != 1 || !marks_.empty()) fail("ends with " + std::to_string(stack_.size()) + " values on its stack");
  return stack_.back();
}

// The dict's entries when it is a state dict: string keys, tensor values.
bool is_state_dict(const Value& v) {
  if (v.kind != Kind::dict) return false;
  for (size_t k = 0; k < v.items.size(); k += 2)
    if (v.items[k]->kind != Kind::text || v.items[k + 1]->kind != Kind::tensor) return false;
  return true;
}

const Value* dict_entry(const Value& dict, const std::string& key) {
  for (size_t k = 0; k < dict.items.size(); k += 2)
    if (dict.items[k]->kind == Kind::text && dict.items[k]->text == key) return dict.items[k + 1].get();
  return nullptr;
}

}  // namespace

PickledStateDict unpickle_state_dict(std::string_view pickle, const std::string& source) {
  const ValuePtr top = Unpickler(pickle, source).run();
  const Value* dict = top.get();
  if (!is_state_dict(*dict) && dict->kind == Kind::dict)
    for (const char* key : {"state_dict", "model"})
      if (const Value* inner = dict_entry(*dict, key); inner && is_state_dict(*inner)) {
        dict = inner;
        break;
      }
  if (!is_state_dict(*dict))
    throw Error(source + " holds " + kind_name(top->kind) +
                " that is not a state dict (a dict of names to tensors, or one under the key 'state_dict' or "
                "'model'); save model.state_dict()");
  PickledStateDict out;
  std::map<std::string, bool> seen;
  for (size_t k = 0; k < dict->items.size(); k += 2) {
    const std::string& name = dict->items[k]->text;
    if (seen[name]) throw Error(source + " names tensor '" + name + "' twice");
    seen[name] = true;
    out.emplace_back(name, dict->items[k + 1]->tensor);
  }
  return out;
}

}  // namespace histotrain
