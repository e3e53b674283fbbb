#include "scan/serialize.hpp"

#include <climits>
#include <cstdint>

namespace fastcollect {
namespace {

class Writer {
 public:
  void u(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void i(int v) { u(static_cast<std::uint64_t>(static_cast<std::int64_t>(v) + 1)); }  // -1 -> 0
  void b(bool v) { out_.push_back(v ? 1 : 0); }
  void s(const std::string& v) {
    u(v.size());
    out_.append(v);
  }
  void strings(const std::vector<std::string>& v) {
    u(v.size());
    for (const auto& x : v) s(x);
  }
  void marks(const std::vector<MarkInfo>& v) {
    u(v.size());
    for (const auto& m : v) {
      s(m.name);
      s(m.source);
      i(m.line);
    }
  }
  void function(const FunctionInfo& f) {
    s(f.name);
    i(f.line);
    b(f.is_async);
    b(f.conditional);
    b(f.is_def);
    marks(f.marks);
    strings(f.other_decorators);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  std::uint64_t u() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= d_.size()) throw DecodeError("truncated varint");
      auto c = static_cast<unsigned char>(d_[pos_++]);
      v |= static_cast<std::uint64_t>(c & 0x7F) << shift;
      if (!(c & 0x80)) return v;
    }
    throw DecodeError("varint too long");
  }
  int i() {
    auto v = static_cast<std::int64_t>(u() - 1);  // unsigned wrap-around undoes the encoder's +1 without overflow
    if (v < INT_MIN || v > INT_MAX) throw DecodeError("integer out of range");
    return static_cast<int>(v);
  }
  bool b() {
    if (pos_ >= d_.size()) throw DecodeError("truncated bool");
    char c = d_[pos_++];
    if (c != 0 && c != 1) throw DecodeError("bad bool");
    return c == 1;
  }
  std::size_t count() {
    std::uint64_t n = u();
    if (n > d_.size() - pos_) throw DecodeError("count larger than the data");  // each element >= 1 byte
    return static_cast<std::size_t>(n);
  }
  std::string s() {
    std::size_t n = count();
    std::string v(d_.substr(pos_, n));
    pos_ += n;
    return v;
  }
  std::vector<std::string> strings() {
    std::vector<std::string> v(count());
    for (auto& x : v) x = s();
    return v;
  }
  std::vector<MarkInfo> marks() {
    std::vector<MarkInfo> v(count());
    for (auto& m : v) {
      m.name = s();
      m.source = s();
      m.line = i();
    }
    return v;
  }
  FunctionInfo function() {
    FunctionInfo f;
    f.name = s();
    f.line = i();
    f.is_async = b();
    f.conditional = b();
    f.is_def = b();
    f.marks = marks();
    f.other_decorators = strings();
    return f;
  }
  bool at_end() const { return pos_ == d_.size(); }

 private:
  std::string_view d_;
  std::size_t pos_ = 0;
};

}  // namespace

std::string encode_module_info(const ModuleInfo& m) {
  Writer w;
  w.u(kModuleInfoFormat);
  w.s(m.error);
  w.b(m.parse_error);
  w.b(m.certain);
  w.strings(m.uncertain_reasons);
  w.u(m.functions.size());
  for (const auto& f : m.functions) w.function(f);
  w.u(m.classes.size());
  for (const auto& c : m.classes) {
    w.s(c.name);
    w.s(c.qualname);
    w.i(c.line);
    w.b(c.conditional);
    w.b(c.has_init);
    w.b(c.has_new);
    w.i(c.test_attr);
    w.strings(c.bases);
    w.marks(c.marks);
    w.strings(c.other_decorators);
    w.u(c.methods.size());
    for (const auto& f : c.methods) w.function(f);
  }
  w.marks(m.module_marks);
  w.i(m.module_test_attr);
  w.u(m.imports.size());
  for (const auto& im : m.imports) {
    w.s(im.module);
    w.i(im.level);
    w.strings(im.names);
    w.b(im.is_from);
    w.b(im.star);
    w.i(im.line);
  }
  w.u(m.mark_aliases.size());
  for (const auto& [a, t] : m.mark_aliases) {
    w.s(a);
    w.s(t);
  }
  w.b(m.defines_generate_tests);
  w.b(m.defines_hooks);
  w.u(m.lines);
  return w.take();
}

ModuleInfo decode_module_info(std::string_view data, const std::string& path) {
  Reader r(data);
  if (r.u() != static_cast<std::uint64_t>(kModuleInfoFormat)) throw DecodeError("format version mismatch");
  ModuleInfo m;
  m.path = path;
  m.error = r.s();
  m.parse_error = r.b();
  m.certain = r.b();
  m.uncertain_reasons = r.strings();
  m.functions.resize(r.count());
  for (auto& f : m.functions) f = r.function();
  m.classes.resize(r.count());
  for (auto& c : m.classes) {
    c.name = r.s();
    c.qualname = r.s();
    c.line = r.i();
    c.conditional = r.b();
    c.has_init = r.b();
    c.has_new = r.b();
    c.test_attr = r.i();
    c.bases = r.strings();
    c.marks = r.marks();
    c.other_decorators = r.strings();
    c.methods.resize(r.count());
    for (auto& f : c.methods) f = r.function();
  }
  m.module_marks = r.marks();
  m.module_test_attr = r.i();
  m.imports.resize(r.count());
  for (auto& im : m.imports) {
    im.module = r.s();
    im.level = r.i();
    im.names = r.strings();
    im.is_from = r.b();
    im.star = r.b();
    im.line = r.i();
  }
  std::size_t n = r.count();
  for (std::size_t k = 0; k < n; ++k) {
    std::string a = r.s();
    std::string t = r.s();
    m.mark_aliases.emplace_back(std::move(a), std::move(t));
  }
  m.defines_generate_tests = r.b();
  m.defines_hooks = r.b();
  m.lines = static_cast<std::uint32_t>(r.u());
  if (!r.at_end()) throw DecodeError("trailing bytes");
  return m;
}

}  // namespace fastcollect
