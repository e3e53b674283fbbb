// Tests for scan/serialize (ModuleInfo <-> bytes) and store/discovery_cache (the SQLite lookup ladder,
// schema and corruption handling, read-only and busy modes).
//
// Timing note: a cache row recorded less than 1 s after its file last changed (mtime or ctime) is "racy"
// and is rehashed instead of trusted. ctime cannot be set, so tests that expect `trusted` sleep just past
// that window (sleep_past_racy_window) after their last file change; they group their checks to sleep rarely.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "scan/module_info.hpp"
#include "scan/scanner.hpp"
#include "scan/serialize.hpp"
#include "store/discovery_cache.hpp"
#include "store/fingerprint.hpp"

namespace fastcollect {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------------------
// Helpers: field-by-field ModuleInfo comparison
// ---------------------------------------------------------------------------------------------------------

// Collects every differing field (with its path, e.g. "classes[1].methods[0].marks[0].source").
class Diff {
 public:
  template <typename T>
  void eq(const std::string& where, const T& a, const T& b) {
    if (a == b) return;
    if (count_++ < 20)
      out_ << "\n  " << where << ": " << ::testing::PrintToString(a) << " != " << ::testing::PrintToString(b);
  }
  ::testing::AssertionResult result() const {
    if (count_ == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << count_ << " field(s) differ:" << out_.str();
  }

 private:
  int count_ = 0;
  std::ostringstream out_;
};

std::string at(const std::string& where, std::size_t k) { return where + "[" + std::to_string(k) + "]"; }

void diff_marks(Diff& d, const std::string& where, const std::vector<MarkInfo>& a, const std::vector<MarkInfo>& b) {
  d.eq(where + ".size()", a.size(), b.size());
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) {
    d.eq(at(where, k) + ".name", a[k].name, b[k].name);
    d.eq(at(where, k) + ".source", a[k].source, b[k].source);
    d.eq(at(where, k) + ".line", a[k].line, b[k].line);
  }
}

void diff_functions(Diff& d, const std::string& where, const std::vector<FunctionInfo>& a,
                    const std::vector<FunctionInfo>& b) {
  d.eq(where + ".size()", a.size(), b.size());
  for (std::size_t k = 0; k < std::min(a.size(), b.size()); ++k) {
    const std::string w = at(where, k);
    d.eq(w + ".name", a[k].name, b[k].name);
    d.eq(w + ".line", a[k].line, b[k].line);
    d.eq(w + ".is_async", a[k].is_async, b[k].is_async);
    d.eq(w + ".conditional", a[k].conditional, b[k].conditional);
    d.eq(w + ".is_def", a[k].is_def, b[k].is_def);
    diff_marks(d, w + ".marks", a[k].marks, b[k].marks);
    d.eq(w + ".other_decorators", a[k].other_decorators, b[k].other_decorators);
  }
}

::testing::AssertionResult same_module(const ModuleInfo& a, const ModuleInfo& b) {
  Diff d;
  d.eq("path", a.path, b.path);
  d.eq("error", a.error, b.error);
  d.eq("parse_error", a.parse_error, b.parse_error);
  d.eq("certain", a.certain, b.certain);
  d.eq("uncertain_reasons", a.uncertain_reasons, b.uncertain_reasons);
  diff_functions(d, "functions", a.functions, b.functions);
  d.eq("classes.size()", a.classes.size(), b.classes.size());
  for (std::size_t k = 0; k < std::min(a.classes.size(), b.classes.size()); ++k) {
    const ClassInfo& x = a.classes[k];
    const ClassInfo& y = b.classes[k];
    const std::string w = at("classes", k);
    d.eq(w + ".name", x.name, y.name);
    d.eq(w + ".qualname", x.qualname, y.qualname);
    d.eq(w + ".line", x.line, y.line);
    d.eq(w + ".conditional", x.conditional, y.conditional);
    d.eq(w + ".has_init", x.has_init, y.has_init);
    d.eq(w + ".has_new", x.has_new, y.has_new);
    d.eq(w + ".test_attr", x.test_attr, y.test_attr);
    d.eq(w + ".bases", x.bases, y.bases);
    diff_marks(d, w + ".marks", x.marks, y.marks);
    d.eq(w + ".other_decorators", x.other_decorators, y.other_decorators);
    diff_functions(d, w + ".methods", x.methods, y.methods);
  }
  diff_marks(d, "module_marks", a.module_marks, b.module_marks);
  d.eq("module_test_attr", a.module_test_attr, b.module_test_attr);
  d.eq("imports.size()", a.imports.size(), b.imports.size());
  for (std::size_t k = 0; k < std::min(a.imports.size(), b.imports.size()); ++k) {
    const std::string w = at("imports", k);
    d.eq(w + ".module", a.imports[k].module, b.imports[k].module);
    d.eq(w + ".level", a.imports[k].level, b.imports[k].level);
    d.eq(w + ".names", a.imports[k].names, b.imports[k].names);
    d.eq(w + ".is_from", a.imports[k].is_from, b.imports[k].is_from);
    d.eq(w + ".star", a.imports[k].star, b.imports[k].star);
    d.eq(w + ".line", a.imports[k].line, b.imports[k].line);
  }
  d.eq("mark_aliases", a.mark_aliases, b.mark_aliases);
  d.eq("defines_generate_tests", a.defines_generate_tests, b.defines_generate_tests);
  d.eq("defines_hooks", a.defines_hooks, b.defines_hooks);
  d.eq("lines", a.lines, b.lines);
  return d.result();
}

::testing::AssertionResult same_modules(const std::vector<ModuleInfo>& a, const std::vector<ModuleInfo>& b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "sizes differ: " << a.size() << " != " << b.size();
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto r = same_module(a[i], b[i]);
    if (!r) return ::testing::AssertionFailure() << "module " << i << " (" << a[i].path << "): " << r.message();
  }
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------------------------------------
// Helpers: files, time, SQLite
// ---------------------------------------------------------------------------------------------------------

// A fresh directory from mkdtemp, removed with its content when the object dies.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "fc_store_XXXXXX").string();
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void write_file(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error("cannot write " + path);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw std::runtime_error("cannot stat " + path);
  return st;
}

void set_mtime(const std::string& path, const struct timespec& t) {
  const struct timespec times[2] = {t, t};
  if (::utimensat(AT_FDCWD, path.c_str(), times, 0) != 0) throw std::runtime_error("utimensat failed: " + path);
}

bool same_time(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

// Past the cache's 1 s racy window, so rows recorded from now on are trusted by stat.
void sleep_past_racy_window() { std::this_thread::sleep_for(std::chrono::milliseconds(1100)); }

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::uniform_int_distribution<int> byte(0, 255);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(byte(rng));
  return s;
}

struct SqliteCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using SqliteDb = std::unique_ptr<sqlite3, SqliteCloser>;

SqliteDb open_sqlite(const std::string& path) {
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  SqliteDb db(raw);
  if (rc != SQLITE_OK) throw std::runtime_error("sqlite3_open_v2 failed for " + path + ": " + sqlite3_errstr(rc));
  return db;
}

void exec(sqlite3* db, const std::string& sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  if (rc != SQLITE_OK) throw std::runtime_error("'" + sql + "' failed: " + msg);
}

int user_version(const std::string& path) {
  SqliteDb db = open_sqlite(path);
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db.get(), "PRAGMA user_version", -1, &raw, nullptr) != SQLITE_OK)
    throw std::runtime_error(sqlite3_errmsg(db.get()));
  std::unique_ptr<sqlite3_stmt, decltype(&sqlite3_finalize)> st(raw, &sqlite3_finalize);
  if (sqlite3_step(st.get()) != SQLITE_ROW) throw std::runtime_error(sqlite3_errmsg(db.get()));
  return sqlite3_column_int(st.get(), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------------------

// Exercises every field of ModuleInfo.
const char* const kRichSource = R"PY(import os, sys as system
import pytest
from pytest import mark
from pytest import mark as m2
from . import helpers
from ..pkg.sub import thing, other as renamed
from .star_mod import *

slow = pytest.mark.slow
flaky_alias = mark.flaky(reruns=2)

pytestmark = [pytest.mark.usefixtures("db"), slow, unknown_thing]
__test__ = True


def pytest_generate_tests(metafunc):
    pass


def pytest_collection_modifyitems(items):
    import json
    from .lazy import late


@pytest.mark.parametrize("x", [1, 2])
@slow
@functools.wraps(f)
@m2.skipif(True, reason="r")
def test_plain(x):
    pass


async def test_async():
    pass


if system.platform == "linux":
    def test_conditional():
        pass

try:
    from helpers import test_imported as test_alias
except ImportError:
    test_assigned = lambda: None


@pytest.mark.usefixtures("a")
@decorator(1)
class TestOuter(Base, mixin.Mixin, metaclass=Meta):
    pytestmark = pytest.mark.slow
    __test__ = False

    def __init__(self):
        pass

    def test_method(self):
        pass

    @flaky_alias
    @other
    async def test_async_method(self):
        pass

    test_bound = test_plain

    class TestInner:
        __test__ = some_call()

        def __new__(cls):
            pass

        def test_inner(self):
            pass


if True:
    class TestConditional:
        def test_x(self):
            pass

globals()["test_dynamic"] = 1
)PY";

ModuleInfo scan_text(const std::string& source, const std::string& path = "/virtual/test_rich.py") {
  Scanner scanner{NameRules{}};
  return scanner.scan_source(source, path);
}

const FunctionInfo* find_fn(const std::vector<FunctionInfo>& fns, const std::string& name) {
  for (const auto& f : fns)
    if (f.name == name) return &f;
  return nullptr;
}

// The rich module, with checks that it really exercises the fields (so the round trip means something).
ModuleInfo rich_module() {
  ModuleInfo m = scan_text(kRichSource);
  EXPECT_TRUE(m.error.empty()) << m.error;
  EXPECT_FALSE(m.parse_error);
  EXPECT_FALSE(m.certain);
  EXPECT_GE(m.uncertain_reasons.size(), 2U);  // star import, globals()
  const FunctionInfo* plain = find_fn(m.functions, "test_plain");
  if (plain == nullptr) {
    ADD_FAILURE() << "test_plain not found";
    return m;
  }
  EXPECT_EQ(plain->marks.size(), 3U);
  EXPECT_FALSE(plain->marks.empty() || plain->marks[0].source.empty());
  EXPECT_EQ(plain->other_decorators.size(), 1U);
  const FunctionInfo* async_fn = find_fn(m.functions, "test_async");
  EXPECT_TRUE(async_fn != nullptr && async_fn->is_async);
  const FunctionInfo* cond = find_fn(m.functions, "test_conditional");
  EXPECT_TRUE(cond != nullptr && cond->conditional);
  const FunctionInfo* alias = find_fn(m.functions, "test_alias");
  EXPECT_TRUE(alias != nullptr && !alias->is_def && alias->conditional);
  EXPECT_NE(find_fn(m.functions, "test_assigned"), nullptr);
  EXPECT_EQ(m.classes.size(), 3U);
  if (m.classes.size() >= 2) {
    const ClassInfo& outer = m.classes[0];
    EXPECT_EQ(outer.qualname, "TestOuter");
    EXPECT_EQ(outer.bases.size(), 2U);
    EXPECT_EQ(outer.marks.size(), 2U);  // decorator + class pytestmark
    EXPECT_EQ(outer.other_decorators.size(), 1U);
    EXPECT_TRUE(outer.has_init);
    EXPECT_EQ(outer.test_attr, 0);
    EXPECT_EQ(outer.methods.size(), 3U);  // test_method, test_async_method, test_bound
    const ClassInfo& inner = m.classes[1];
    EXPECT_EQ(inner.qualname, "TestOuter.TestInner");
    EXPECT_TRUE(inner.has_new);
    EXPECT_EQ(inner.test_attr, 2);
  }
  if (m.classes.size() >= 3) {
    EXPECT_TRUE(m.classes[2].conditional);
  }
  EXPECT_EQ(m.module_marks.size(), 3U);
  EXPECT_EQ(m.module_test_attr, 1);
  bool level1 = false, level2 = false, star = false, names = false;
  for (const auto& im : m.imports) {
    level1 = level1 || im.level == 1;
    level2 = level2 || im.level == 2;
    star = star || im.star;
    names = names || im.names.size() == 2;
  }
  EXPECT_TRUE(level1 && level2 && star && names);
  EXPECT_EQ(m.mark_aliases.size(), 2U);
  EXPECT_TRUE(m.defines_generate_tests);
  EXPECT_TRUE(m.defines_hooks);
  EXPECT_GT(m.lines, 50U);
  return m;
}

ModuleInfo round_trip(const ModuleInfo& m) { return decode_module_info(encode_module_info(m), m.path); }

// ---------------------------------------------------------------------------------------------------------
// Serialize
// ---------------------------------------------------------------------------------------------------------

TEST(SerializeRoundTrip, RichScannedModuleDecodesToAnEqualStructure) {
  ModuleInfo m = rich_module();
  std::string data = encode_module_info(m);
  EXPECT_TRUE(same_module(decode_module_info(data, m.path), m));
  // The path is not encoded: decode takes it from the caller.
  EXPECT_EQ(data.find("/virtual/test_rich.py"), std::string::npos);
  EXPECT_EQ(decode_module_info(data, "elsewhere.py").path, "elsewhere.py");
  // Deterministic.
  EXPECT_EQ(encode_module_info(m), data);
}

TEST(SerializeRoundTrip, ParseErrorModule) {
  ModuleInfo m = scan_text("def test_a(:\n    pass\n\ndef test_b():\n    pass\n", "bad_syntax.py");
  ASSERT_TRUE(m.parse_error);
  ASSERT_FALSE(m.certain);
  EXPECT_TRUE(same_module(round_trip(m), m));
}

TEST(SerializeRoundTrip, InvalidUtf8Module) {
  ModuleInfo m = scan_text("def test_a():\n    x = '\xff\xfe'\n", "latin1.py");
  ASSERT_FALSE(m.error.empty());
  ASSERT_FALSE(m.certain);
  EXPECT_TRUE(same_module(round_trip(m), m));
}

TEST(SerializeRoundTrip, DefaultAndEmptyModules) {
  ModuleInfo def;
  EXPECT_TRUE(same_module(round_trip(def), def));
  ModuleInfo empty = scan_text("", "empty.py");
  EXPECT_TRUE(same_module(round_trip(empty), empty));
}

TEST(SerializeRoundTrip, ExtremeValuesAndBinaryStrings) {
  ModuleInfo m;
  m.path = "x.py";
  m.error = std::string("nul\0inside\xff", 11);
  m.uncertain_reasons = {"", std::string(300, 'r'), std::string(20000, 's')};
  m.module_test_attr = INT_MIN;
  m.lines = UINT32_MAX;
  FunctionInfo f;
  f.name = std::string(1, '\0');
  f.line = INT_MAX;
  f.is_def = false;
  f.marks.push_back({"", "", INT_MIN});
  f.marks.push_back({"m", std::string(128, 'q'), -1});
  f.other_decorators = {"", "\x80"};
  m.functions = {f, FunctionInfo{}};
  ClassInfo c;
  c.line = -5;
  c.test_attr = INT_MAX;
  c.methods = {f};
  m.classes = {c, ClassInfo{}};
  ImportInfo im;
  im.level = INT_MAX;
  im.line = INT_MIN;
  im.names = {"", "a"};
  m.imports = {im, ImportInfo{}};
  m.mark_aliases = {{"", ""}, {"a", std::string(200, 'b')}};
  EXPECT_TRUE(same_module(round_trip(m), m));
}

// Every field is encoded: changing any one of them changes the bytes, round-trips, and is seen by same_module.
TEST(SerializeRoundTrip, EveryFieldIsEncodedAndCompared) {
  const ModuleInfo base = rich_module();
  ASSERT_FALSE(base.functions.empty());
  ASSERT_FALSE(base.functions[0].marks.empty());
  ASSERT_FALSE(base.classes.empty());
  ASSERT_FALSE(base.classes[0].methods.empty());
  ASSERT_FALSE(base.classes[0].marks.empty());
  ASSERT_FALSE(base.module_marks.empty());
  ASSERT_FALSE(base.imports.empty());
  ASSERT_FALSE(base.mark_aliases.empty());
  using Mut = std::function<void(ModuleInfo&)>;
  const std::vector<std::pair<const char*, Mut>> mutations = {
      {"error", [](ModuleInfo& m) { m.error += "x"; }},
      {"parse_error", [](ModuleInfo& m) { m.parse_error = !m.parse_error; }},
      {"certain", [](ModuleInfo& m) { m.certain = !m.certain; }},
      {"uncertain_reasons", [](ModuleInfo& m) { m.uncertain_reasons.push_back("why"); }},
      {"uncertain_reasons[0]", [](ModuleInfo& m) { m.uncertain_reasons[0] += "!"; }},
      {"functions.size", [](ModuleInfo& m) { m.functions.pop_back(); }},
      {"functions.name", [](ModuleInfo& m) { m.functions[0].name += "x"; }},
      {"functions.line", [](ModuleInfo& m) { m.functions[0].line += 1; }},
      {"functions.is_async", [](ModuleInfo& m) { m.functions[0].is_async = !m.functions[0].is_async; }},
      {"functions.conditional", [](ModuleInfo& m) { m.functions[0].conditional = !m.functions[0].conditional; }},
      {"functions.is_def", [](ModuleInfo& m) { m.functions[0].is_def = !m.functions[0].is_def; }},
      {"functions.marks.size", [](ModuleInfo& m) { m.functions[0].marks.pop_back(); }},
      {"functions.marks.name", [](ModuleInfo& m) { m.functions[0].marks[0].name += "x"; }},
      {"functions.marks.source", [](ModuleInfo& m) { m.functions[0].marks[0].source += "x"; }},
      {"functions.marks.line", [](ModuleInfo& m) { m.functions[0].marks[0].line += 1; }},
      {"functions.other_decorators", [](ModuleInfo& m) { m.functions[0].other_decorators.push_back("d"); }},
      {"classes.size", [](ModuleInfo& m) { m.classes.pop_back(); }},
      {"classes.name", [](ModuleInfo& m) { m.classes[0].name += "x"; }},
      {"classes.qualname", [](ModuleInfo& m) { m.classes[0].qualname += "x"; }},
      {"classes.line", [](ModuleInfo& m) { m.classes[0].line += 1; }},
      {"classes.conditional", [](ModuleInfo& m) { m.classes[0].conditional = !m.classes[0].conditional; }},
      {"classes.has_init", [](ModuleInfo& m) { m.classes[0].has_init = !m.classes[0].has_init; }},
      {"classes.has_new", [](ModuleInfo& m) { m.classes[0].has_new = !m.classes[0].has_new; }},
      {"classes.test_attr", [](ModuleInfo& m) { m.classes[0].test_attr = m.classes[0].test_attr == 1 ? 2 : 1; }},
      {"classes.bases", [](ModuleInfo& m) { m.classes[0].bases.push_back("B"); }},
      {"classes.marks", [](ModuleInfo& m) { m.classes[0].marks[0].source += "x"; }},
      {"classes.other_decorators", [](ModuleInfo& m) { m.classes[0].other_decorators.push_back("d"); }},
      {"classes.methods.size", [](ModuleInfo& m) { m.classes[0].methods.pop_back(); }},
      {"classes.methods.name", [](ModuleInfo& m) { m.classes[0].methods[0].name += "x"; }},
      {"classes.methods.is_async",
       [](ModuleInfo& m) { m.classes[0].methods[0].is_async = !m.classes[0].methods[0].is_async; }},
      {"module_marks.name", [](ModuleInfo& m) { m.module_marks[0].name += "x"; }},
      {"module_marks.size", [](ModuleInfo& m) { m.module_marks.pop_back(); }},
      {"module_test_attr", [](ModuleInfo& m) { m.module_test_attr = m.module_test_attr == 0 ? 1 : 0; }},
      {"imports.size", [](ModuleInfo& m) { m.imports.pop_back(); }},
      {"imports.module", [](ModuleInfo& m) { m.imports[0].module += "x"; }},
      {"imports.level", [](ModuleInfo& m) { m.imports[0].level += 1; }},
      {"imports.names", [](ModuleInfo& m) { m.imports[0].names.push_back("n"); }},
      {"imports.is_from", [](ModuleInfo& m) { m.imports[0].is_from = !m.imports[0].is_from; }},
      {"imports.star", [](ModuleInfo& m) { m.imports[0].star = !m.imports[0].star; }},
      {"imports.line", [](ModuleInfo& m) { m.imports[0].line += 1; }},
      {"mark_aliases.first", [](ModuleInfo& m) { m.mark_aliases[0].first += "x"; }},
      {"mark_aliases.second", [](ModuleInfo& m) { m.mark_aliases[0].second += "x"; }},
      {"mark_aliases.size", [](ModuleInfo& m) { m.mark_aliases.pop_back(); }},
      {"defines_generate_tests", [](ModuleInfo& m) { m.defines_generate_tests = !m.defines_generate_tests; }},
      {"defines_hooks", [](ModuleInfo& m) { m.defines_hooks = !m.defines_hooks; }},
      {"lines", [](ModuleInfo& m) { m.lines += 1; }},
  };
  const std::string base_bytes = encode_module_info(base);
  for (const auto& [name, mutate] : mutations) {
    SCOPED_TRACE(name);
    ModuleInfo changed = base;
    mutate(changed);
    EXPECT_FALSE(same_module(changed, base));
    EXPECT_NE(encode_module_info(changed), base_bytes);
    EXPECT_TRUE(same_module(round_trip(changed), changed));
  }
  ModuleInfo moved = base;
  moved.path = "other.py";
  EXPECT_FALSE(same_module(moved, base));
}

class SerializeDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    info_ = rich_module();
    data_ = encode_module_info(info_);
    ASSERT_GT(data_.size(), 500U);
  }
  ModuleInfo info_;
  std::string data_;
};

TEST_F(SerializeDecode, EveryTruncationThrowsDecodeError) {
  for (std::size_t n = 0; n < data_.size(); ++n) {
    EXPECT_THROW(decode_module_info(std::string_view(data_).substr(0, n), "p"), DecodeError) << "prefix length " << n;
  }
  EXPECT_NO_THROW(decode_module_info(data_, "p"));
}

TEST_F(SerializeDecode, WrongVersionThrows) {
  ASSERT_EQ(static_cast<unsigned char>(data_[0]), static_cast<unsigned>(kModuleInfoFormat));
  for (int v : {0, kModuleInfoFormat + 1, 0x7F}) {
    std::string bad = data_;
    bad[0] = static_cast<char>(v);
    EXPECT_THROW(decode_module_info(bad, "p"), DecodeError) << "version " << v;
  }
  EXPECT_THROW(decode_module_info(std::string(1, static_cast<char>(kModuleInfoFormat + 1)), "p"), DecodeError);
}

TEST_F(SerializeDecode, TrailingBytesThrow) {
  EXPECT_THROW(decode_module_info(data_ + std::string(1, '\0'), "p"), DecodeError);
  EXPECT_THROW(decode_module_info(data_ + "garbage", "p"), DecodeError);
  EXPECT_THROW(decode_module_info(data_ + data_, "p"), DecodeError);
}

// Hand-assembled encoding of a module with one function whose line is the varint `line_varint`
// (layout checked against the encoder with a normal line first).
std::string one_function_encoding(const std::string& line_varint) {
  return std::string(
             "\x01"      // format
             "\x00"      // error ""
             "\x00\x01"  // parse_error, certain
             "\x00"      // uncertain_reasons
             "\x01"      // 1 function:
             "\x00",     //   name ""
             7) +
         line_varint +  //   line + 1
         std::string(
             "\x00\x00\x01"       //   is_async, conditional, is_def
             "\x00\x00"           //   marks, other_decorators
             "\x00\x00\x00\x00"   // classes, module_marks, module_test_attr (-1), imports
             "\x00\x00\x00\x00",  // mark_aliases, generate_tests, hooks, lines
             13);
}

TEST_F(SerializeDecode, IntegerFieldsOutsideIntRangeThrow) {
  ModuleInfo m;
  m.functions.emplace_back();
  m.functions[0].line = 5;
  ASSERT_EQ(encode_module_info(m), one_function_encoding("\x06"));
  EXPECT_EQ(decode_module_info(one_function_encoding("\x06"), "p").functions.at(0).line, 5);
  // 2^31 (INT_MAX + 1 after the -1 bias) still decodes; 2^32 + 6 and 2^63 cannot come from the encoder.
  EXPECT_EQ(decode_module_info(one_function_encoding("\x80\x80\x80\x80\x08"), "p").functions.at(0).line, INT_MAX);
  EXPECT_THROW(decode_module_info(one_function_encoding("\x86\x80\x80\x80\x10"), "p"), DecodeError);
  EXPECT_THROW(decode_module_info(one_function_encoding(std::string(9, '\x80') + "\x01"), "p"), DecodeError);
  // Eleven-byte varints are rejected.
  EXPECT_THROW(decode_module_info(one_function_encoding(std::string(10, '\x80') + "\x01"), "p"), DecodeError);
}

TEST_F(SerializeDecode, BadBoolAndOversizedCountsThrow) {
  std::string bad_bool = one_function_encoding("\x06");
  bad_bool[3] = '\x02';  // certain
  EXPECT_THROW(decode_module_info(bad_bool, "p"), DecodeError);
  std::string huge_count = one_function_encoding("\x06");
  huge_count[5] = '\x7F';  // 127 functions in 20 bytes
  EXPECT_THROW(decode_module_info(huge_count, "p"), DecodeError);
  std::string huge_string = "\x01\xFF\xFF\xFF\xFF\x0F";  // error of length 2^32-1
  EXPECT_THROW(decode_module_info(huge_string, "p"), DecodeError);
}

// Decoding arbitrary bytes either throws DecodeError or returns a module that itself round-trips.
void decode_never_crashes(const std::string& data) {
  ModuleInfo m;
  try {
    m = decode_module_info(data, "fuzz.py");
  } catch (const DecodeError&) {
    return;
  }
  ModuleInfo again = decode_module_info(encode_module_info(m), "fuzz.py");
  EXPECT_TRUE(same_module(again, m));
}

TEST_F(SerializeDecode, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  std::uniform_int_distribution<std::size_t> length(0, 96);
  for (int iter = 0; iter < 50000; ++iter) {
    std::string data = random_bytes(rng, length(rng));
    if (!data.empty() && iter % 2 == 0) data[0] = static_cast<char>(kModuleInfoFormat);  // get past the version
    decode_never_crashes(data);
    if (::testing::Test::HasFailure()) FAIL() << "iteration " << iter;
  }
}

TEST_F(SerializeDecode, MutatedEncodingsNeverCrash) {
  std::mt19937 rng(777);
  std::uniform_int_distribution<std::size_t> pos(0, data_.size() - 1);
  std::uniform_int_distribution<int> count(1, 4);
  std::uniform_int_distribution<int> byte(0, 255);
  int decoded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string data = data_;
    for (int k = count(rng); k > 0; --k) data[pos(rng)] = static_cast<char>(byte(rng));
    if (iter % 3 == 0) data.resize(pos(rng));
    try {
      decode_module_info(data, "p");
      ++decoded;
    } catch (const DecodeError&) {
    }
    decode_never_crashes(data);
    if (::testing::Test::HasFailure()) FAIL() << "iteration " << iter;
  }
  EXPECT_GT(decoded, 0);  // some mutations hit string bytes only: the decoder did go all the way through
}

// ---------------------------------------------------------------------------------------------------------
// DiscoveryCache
// ---------------------------------------------------------------------------------------------------------

std::string test_source(int k) {
  return "import pytest\n\n@pytest.mark.m" + std::to_string(k) + "\ndef test_f" + std::to_string(k) +
         "():\n    pass\n\nclass TestC" + std::to_string(k) + ":\n    def test_m(self):\n        pass\n";
}

class CacheTest : public ::testing::Test {
 protected:
  std::string file(const std::string& name) const { return dir_.path() + "/" + name; }

  // Writes test_0.py .. test_{n-1}.py (distinct content) and returns their paths.
  std::vector<std::string> make_files(int n, const std::string& prefix = "test_") const {
    std::vector<std::string> paths;
    for (int k = 0; k < n; ++k) {
      paths.push_back(file(prefix + std::to_string(k) + ".py"));
      write_file(paths.back(), test_source(k));
    }
    return paths;
  }

  // What an uncached scan returns.
  static std::vector<ModuleInfo> expected(const std::vector<std::string>& paths, const NameRules& rules = {}) {
    return scan_files(paths, rules, 1);
  }

  std::vector<ModuleInfo> scan(DiscoveryCache& cache, const std::vector<std::string>& paths, CacheStats& stats,
                               const NameRules& rules = {}, unsigned threads = 2) const {
    return cache.scan(paths, rules, threads, stats);
  }

  // A valid cache file holding rows for `paths`, with no -wal/-shm left behind.
  void make_valid_db(const std::vector<std::string>& paths) const {
    DiscoveryCache cache(db_, false);
    ASSERT_TRUE(cache.usable()) << cache.open_warning();
    CacheStats stats;
    scan(cache, paths, stats);
    ASSERT_TRUE(stats.wrote) << stats.warning;
    ASSERT_EQ(cache.row_count(), paths.size());
  }

  TempDir dir_;
  std::string db_ = dir_.path() + "/cache.db";
};

class CacheLadder : public CacheTest {};

TEST_F(CacheLadder, FirstScanParsesThenUnchangedFilesAreTrusted) {
  auto paths = make_files(4);
  sleep_past_racy_window();
  DiscoveryCache cache(db_, false);
  ASSERT_TRUE(cache.usable());
  EXPECT_TRUE(cache.open_warning().empty()) << cache.open_warning();
  EXPECT_EQ(cache.row_count(), 0U);
  CacheStats stats;
  auto first = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(first, expected(paths)));
  EXPECT_EQ(stats.files, 4U);
  EXPECT_EQ(stats.parsed, 4U);
  EXPECT_EQ(stats.trusted, 0U);
  EXPECT_EQ(stats.rehashed, 0U);
  EXPECT_TRUE(stats.wrote);
  EXPECT_FALSE(stats.read_only);
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  EXPECT_GE(stats.seconds, 0.0);
  EXPECT_EQ(cache.row_count(), 4U);

  auto second = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(second, expected(paths)));
  EXPECT_EQ(stats.trusted, 4U);
  EXPECT_EQ(stats.parsed, 0U);
  EXPECT_EQ(stats.rehashed, 0U);
  EXPECT_FALSE(stats.wrote);

  // Rows persist across instances.
  DiscoveryCache reopened(db_, false);
  EXPECT_TRUE(reopened.open_warning().empty()) << reopened.open_warning();
  auto third = scan(reopened, paths, stats, {}, 1);
  EXPECT_TRUE(same_modules(third, expected(paths)));
  EXPECT_EQ(stats.trusted, 4U);
  EXPECT_FALSE(stats.wrote);

  // Touched (0), same-size edit with mtime restored (1), replaced by rename (2), untouched (3).
  const struct timespec new_time = {1'600'000'000, 123'456'789};
  set_mtime(paths[0], new_time);
  const struct timespec old_mtime1 = stat_of(paths[1]).st_mtim;
  std::string edited = test_source(1);
  const std::size_t at_name = edited.find("test_f1");
  ASSERT_NE(at_name, std::string::npos);
  edited.replace(at_name, 7, "test_g1");
  ASSERT_EQ(edited.size(), test_source(1).size());
  write_file(paths[1], edited);
  set_mtime(paths[1], old_mtime1);
  ASSERT_TRUE(same_time(stat_of(paths[1]).st_mtim, old_mtime1));
  const struct stat before2 = stat_of(paths[2]);
  write_file(paths[2] + ".tmp", test_source(2));
  set_mtime(paths[2] + ".tmp", before2.st_mtim);
  ASSERT_EQ(std::rename((paths[2] + ".tmp").c_str(), paths[2].c_str()), 0);
  ASSERT_NE(stat_of(paths[2]).st_ino, before2.st_ino);
  sleep_past_racy_window();

  auto changed = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(changed, expected(paths)));
  EXPECT_EQ(stats.trusted, 1U);   // 3
  EXPECT_EQ(stats.rehashed, 2U);  // 0 (touched), 2 (same bytes, new inode)
  EXPECT_EQ(stats.parsed, 1U);    // 1
  EXPECT_TRUE(stats.wrote);
  ASSERT_EQ(changed[1].functions.size(), 1U);
  EXPECT_EQ(changed[1].functions[0].name, "test_g1");

  // The refreshed rows are trusted now, and the edited file's row holds the new content.
  auto after = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(after, expected(paths)));
  EXPECT_EQ(stats.trusted, 4U);
  EXPECT_EQ(stats.parsed, 0U);
  EXPECT_EQ(stats.rehashed, 0U);
  EXPECT_FALSE(stats.wrote);
  ASSERT_EQ(after[1].functions.size(), 1U);
  EXPECT_EQ(after[1].functions[0].name, "test_g1");

  // A deleted file's row is pruned when the remaining paths are scanned.
  ASSERT_EQ(::unlink(paths[3].c_str()), 0);
  std::vector<std::string> remaining(paths.begin(), paths.begin() + 3);
  auto pruned = scan(cache, remaining, stats);
  EXPECT_TRUE(same_modules(pruned, expected(remaining)));
  EXPECT_EQ(stats.pruned, 1U);
  EXPECT_EQ(stats.trusted, 3U);
  EXPECT_TRUE(stats.wrote);
  EXPECT_EQ(cache.row_count(), 3U);
  scan(cache, remaining, stats);
  EXPECT_EQ(stats.pruned, 0U);
  EXPECT_FALSE(stats.wrote);

  // Other name rules: the rows are not used, and the results follow the new rules.
  NameRules check_rules;
  check_rules.python_functions = {"check"};
  auto other = scan(cache, remaining, stats, check_rules);
  EXPECT_TRUE(same_modules(other, expected(remaining, check_rules)));
  EXPECT_EQ(stats.parsed, 3U);
  EXPECT_EQ(stats.trusted + stats.rehashed, 0U);
  EXPECT_TRUE(stats.wrote);
  ASSERT_FALSE(other.empty());
  EXPECT_TRUE(other[0].functions.empty());
  NameRules class_rules;
  class_rules.python_classes = {"Check"};
  scan(cache, remaining, stats, class_rules);
  EXPECT_EQ(stats.parsed, 3U);
}

TEST_F(CacheLadder, RowsRecordedWithinTheRacyWindowAreRehashedNotTrusted) {
  const auto written = std::chrono::steady_clock::now();
  auto paths = make_files(3);
  DiscoveryCache cache(db_, false);
  CacheStats stats;
  scan(cache, paths, stats);
  EXPECT_EQ(stats.parsed, 3U);
  if (std::chrono::steady_clock::now() - written > std::chrono::milliseconds(900))
    GTEST_SKIP() << "machine too slow: the rows were recorded more than 1 s after the writes";
  // Same stat, but the files changed less than 1 s before the rows were recorded.
  auto again = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(again, expected(paths)));
  EXPECT_EQ(stats.trusted, 0U);
  EXPECT_EQ(stats.rehashed, 3U);
  EXPECT_EQ(stats.parsed, 0U);
  // A same-size edit in the same instant, mtime kept: caught by the hash.
  const struct timespec mtime = stat_of(paths[0]).st_mtim;
  std::string edited = test_source(0);
  edited.replace(edited.find("test_f0"), 7, "test_h0");
  write_file(paths[0], edited);
  set_mtime(paths[0], mtime);
  auto changed = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(changed, expected(paths)));
  EXPECT_EQ(stats.parsed, 1U);
  ASSERT_EQ(changed[0].functions.size(), 1U);
  EXPECT_EQ(changed[0].functions[0].name, "test_h0");
}

TEST_F(CacheLadder, ThreadCountDoesNotChangeResults) {
  std::vector<std::string> paths = make_files(20);
  write_file(file("test_rich.py"), kRichSource);
  write_file(file("test_syntax.py"), "def test_a(:\n  pass\n");
  write_file(file("test_latin1.py"), "def test_a():\n    x = '\xe9'\n");
  for (const char* name : {"test_rich.py", "test_syntax.py", "test_latin1.py", "test_missing.py"})
    paths.push_back(file(name));
  DiscoveryCache one(db_, false);
  DiscoveryCache four(file("other.db"), false);
  CacheStats s1, s4;
  auto r1 = scan(one, paths, s1, {}, 1);
  auto r4 = scan(four, paths, s4, {}, 4);
  EXPECT_TRUE(same_modules(r1, r4));
  EXPECT_TRUE(same_modules(r1, expected(paths)));
  EXPECT_EQ(s1.parsed, s4.parsed);
  EXPECT_EQ(one.row_count(), four.row_count());
  // From the rows now, threads swapped.
  auto c1 = scan(four, paths, s1, {}, 1);
  auto c4 = scan(one, paths, s4, {}, 4);
  EXPECT_EQ(s1.parsed, 2U);  // only the invalid UTF-8 and the missing file are never cached
  EXPECT_EQ(s4.parsed, 2U);
  EXPECT_TRUE(same_modules(c1, r1));
  EXPECT_TRUE(same_modules(c4, r1));
  auto c0 = scan(one, paths, s4, {}, 0);  // 0 = all cores
  EXPECT_TRUE(same_modules(c0, r1));
}

TEST_F(CacheLadder, UnreadablePathsGetAnErrorAndAreNotCached) {
  auto paths = make_files(2);
  const std::string missing = file("test_missing.py");
  const std::string folder = file("test_folder.py");
  ASSERT_EQ(::mkdir(folder.c_str(), 0755), 0);
  const std::string latin1 = file("test_latin1.py");
  write_file(latin1, "def test_a():\n    x = '\xe9'\n");
  const std::string syntax = file("test_syntax.py");
  write_file(syntax, "def test_a(:\n  pass\n");
  std::vector<std::string> all = {paths[0], missing, folder, latin1, syntax, paths[1]};
  DiscoveryCache cache(db_, false);
  CacheStats stats;
  auto out = scan(cache, all, stats);
  EXPECT_TRUE(same_modules(out, expected(all)));
  EXPECT_FALSE(out[1].error.empty());
  EXPECT_FALSE(out[1].certain);
  EXPECT_FALSE(out[2].error.empty());
  EXPECT_FALSE(out[3].error.empty());
  EXPECT_TRUE(out[4].error.empty());
  EXPECT_TRUE(out[4].parse_error);
  EXPECT_EQ(stats.parsed, 6U);
  EXPECT_EQ(cache.row_count(), 3U);  // the two test files and the syntax error, which pytest reports itself
  out = scan(cache, all, stats);
  EXPECT_TRUE(same_modules(out, expected(all)));
  EXPECT_EQ(stats.parsed, 3U);
  EXPECT_EQ(cache.row_count(), 3U);

  // A cached file that disappears is reported as missing, not served from its row.
  ASSERT_EQ(::unlink(paths[0].c_str()), 0);
  out = scan(cache, all, stats);
  EXPECT_FALSE(out[0].error.empty());
  EXPECT_TRUE(out[0].functions.empty());
  EXPECT_TRUE(same_modules(out, expected(all)));
}

// Files over the scanner's 64 MiB limit are reported like scan_file does, not parsed through the cache.
TEST_F(CacheLadder, OversizedFileIsReportedAsByScanFile) {
  const std::string big = file("test_big.py");
  {
    std::ofstream out(big, std::ios::binary);
    const std::string chunk = "# " + std::string(1021, 'x') + "\n";
    for (int k = 0; k < 64 * 1024; ++k) out << chunk;
    out << "def test_last():\n    pass\n";
  }
  ASSERT_GT(stat_of(big).st_size, 64 << 20);
  const std::vector<std::string> paths = {big};
  DiscoveryCache cache(db_, false);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_FALSE(out[0].error.empty());
  EXPECT_EQ(cache.row_count(), 0U);
}

TEST(CacheKey, DependsOnTheNameRules) {
  NameRules a;
  NameRules b;
  EXPECT_EQ(cache_key(a), cache_key(b));
  b.python_functions = {"check"};
  EXPECT_NE(cache_key(a), cache_key(b));
  NameRules c;
  c.python_classes = {"Check"};
  EXPECT_NE(cache_key(a), cache_key(c));
  NameRules d;
  d.python_functions = {"te", "st"};
  NameRules e;
  e.python_functions = {"test"};
  EXPECT_NE(cache_key(d), cache_key(e));
  NameRules f;
  f.python_functions = {"test", "Test"};
  f.python_classes = {};
  NameRules g;
  g.python_functions = {"test"};
  g.python_classes = {"Test"};
  EXPECT_NE(cache_key(f), cache_key(g));
}

class CacheSchema : public CacheTest {};

TEST_F(CacheSchema, OtherSchemaVersionIsSetAsideAndRebuilt) {
  {
    SqliteDb db = open_sqlite(db_);
    exec(db.get(), "CREATE TABLE files(x); INSERT INTO files VALUES(1); PRAGMA user_version = 99;");
  }
  write_file(db_ + ".corrupt", "stale set-aside file");
  auto paths = make_files(3);
  DiscoveryCache cache(db_, false);
  EXPECT_TRUE(cache.usable());
  EXPECT_FALSE(cache.open_warning().empty());
  EXPECT_NE(cache.open_warning().find("99"), std::string::npos) << cache.open_warning();
  ASSERT_TRUE(exists(db_ + ".corrupt"));
  EXPECT_EQ(user_version(db_ + ".corrupt"), 99);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_EQ(stats.parsed, 3U);
  EXPECT_TRUE(stats.wrote);
  EXPECT_EQ(stats.warning, cache.open_warning());
  EXPECT_EQ(cache.row_count(), 3U);
  EXPECT_EQ(user_version(db_), DiscoveryCache::kSchemaVersion);

  DiscoveryCache next(db_, false);
  EXPECT_TRUE(next.open_warning().empty()) << next.open_warning();
  scan(next, paths, stats);
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  EXPECT_EQ(stats.parsed, 0U);
}

// ---------------------------------------------------------------------------------------------------------
// Corruption
// ---------------------------------------------------------------------------------------------------------

enum class Damage { TruncatedToHalf, RandomBytes, ZeroLength, DamagedTablePage, StrayWal };

std::string damage_name(const ::testing::TestParamInfo<Damage>& info) {
  switch (info.param) {
    case Damage::TruncatedToHalf:
      return "TruncatedToHalf";
    case Damage::RandomBytes:
      return "RandomBytes";
    case Damage::ZeroLength:
      return "ZeroLength";
    case Damage::DamagedTablePage:
      return "DamagedTablePage";
    case Damage::StrayWal:
      return "StrayWal";
  }
  return "Unknown";
}

class CacheCorruption : public CacheTest, public ::testing::WithParamInterface<Damage> {
 protected:
  // Builds a valid cache of `paths` (no -wal left), then damages it as the parameter says.
  void damage(const std::vector<std::string>& paths) {
    make_valid_db(paths);
    ASSERT_FALSE(exists(db_ + "-wal"));
    const auto size = static_cast<std::size_t>(stat_of(db_).st_size);
    ASSERT_GE(size, 8192U);
    std::mt19937 rng(99);
    switch (GetParam()) {
      case Damage::TruncatedToHalf:
        ASSERT_EQ(::truncate(db_.c_str(), static_cast<off_t>(size / 2)), 0);
        break;
      case Damage::RandomBytes:
        write_file(db_, random_bytes(rng, size));
        break;
      case Damage::ZeroLength:
        write_file(db_, "");
        break;
      case Damage::DamagedTablePage: {  // header intact: found when the rows are read
        std::string bytes = read_file(db_);
        std::string noise = random_bytes(rng, size - 4096);
        bytes.replace(4096, noise.size(), noise);
        write_file(db_, bytes);
        break;
      }
      case Damage::StrayWal:  // a -wal file that is garbage: SQLite ignores an invalid WAL
        write_file(db_ + "-wal", random_bytes(rng, 5000));
        break;
    }
  }
  bool damage_is_detected() const { return GetParam() != Damage::ZeroLength && GetParam() != Damage::StrayWal; }
};

TEST_P(CacheCorruption, NeverThrowsParsesEverythingAndRebuilds) {
  auto paths = make_files(12);
  damage(paths);
  if (HasFatalFailure()) return;
  CacheStats stats;
  std::vector<ModuleInfo> out;
  EXPECT_NO_THROW({
    DiscoveryCache cache(db_, false);
    out = scan(cache, paths, stats);
    EXPECT_TRUE(cache.usable());
  });
  EXPECT_TRUE(same_modules(out, expected(paths)));
  if (damage_is_detected()) {
    EXPECT_EQ(stats.parsed, paths.size());
    EXPECT_FALSE(stats.warning.empty());
    EXPECT_TRUE(exists(db_ + ".corrupt"));
  } else {
    EXPECT_TRUE(stats.warning.empty()) << stats.warning;
    EXPECT_FALSE(exists(db_ + ".corrupt"));
  }
  EXPECT_EQ(stats.parsed + stats.trusted + stats.rehashed, paths.size());
  // The rebuilt file works, silently.
  DiscoveryCache next(db_, false);
  EXPECT_TRUE(next.usable());
  EXPECT_TRUE(next.open_warning().empty()) << next.open_warning();
  out = scan(next, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  EXPECT_EQ(stats.parsed, 0U);
  EXPECT_EQ(next.row_count(), paths.size());
}

TEST_P(CacheCorruption, ReadOnlyNeverRebuildsOrWrites) {
  auto paths = make_files(12);
  damage(paths);
  if (HasFatalFailure()) return;
  const std::string bytes = read_file(db_);
  CacheStats stats;
  std::vector<ModuleInfo> out;
  std::string open_warning;
  EXPECT_NO_THROW({
    DiscoveryCache cache(db_, true);
    open_warning = cache.open_warning();
    out = scan(cache, paths, stats);
  });
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_FALSE(stats.wrote);
  EXPECT_TRUE(stats.read_only);
  EXPECT_EQ(read_file(db_), bytes);
  EXPECT_FALSE(exists(db_ + ".corrupt"));
  if (GetParam() == Damage::ZeroLength) {  // an empty database of schema 0: no cache, one warning
    EXPECT_EQ(stats.parsed, paths.size());
    EXPECT_FALSE(stats.warning.empty());
  } else if (damage_is_detected()) {
    EXPECT_EQ(stats.parsed, paths.size());
    EXPECT_FALSE(stats.warning.empty());
  } else {
    EXPECT_EQ(stats.parsed, 0U);
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, CacheCorruption,
                         ::testing::Values(Damage::TruncatedToHalf, Damage::RandomBytes, Damage::ZeroLength,
                                           Damage::DamagedTablePage, Damage::StrayWal),
                         damage_name);

// ---------------------------------------------------------------------------------------------------------
// Read-only
// ---------------------------------------------------------------------------------------------------------

class CacheReadOnly : public CacheTest {};

TEST_F(CacheReadOnly, MissingFileMeansNoCacheAndNoFile) {
  auto paths = make_files(3);
  DiscoveryCache cache(db_, true);
  EXPECT_FALSE(cache.usable());
  EXPECT_TRUE(cache.open_warning().empty()) << cache.open_warning();
  EXPECT_EQ(cache.row_count(), 0U);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_EQ(stats.parsed, 3U);
  EXPECT_FALSE(stats.wrote);
  EXPECT_TRUE(stats.read_only);
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) EXPECT_FALSE(exists(db_ + suffix)) << suffix;
}

TEST_F(CacheReadOnly, ExistingCacheIsUsedButNeverWritten) {
  auto paths = make_files(4);
  sleep_past_racy_window();
  make_valid_db(paths);
  const std::string bytes = read_file(db_);
  const struct timespec mtime = stat_of(db_).st_mtim;

  DiscoveryCache cache(db_, true);
  ASSERT_TRUE(cache.usable());
  EXPECT_TRUE(cache.open_warning().empty()) << cache.open_warning();
  EXPECT_EQ(cache.row_count(), 4U);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_EQ(stats.trusted, 4U);
  EXPECT_FALSE(stats.wrote);
  EXPECT_TRUE(stats.read_only);

  // Changed, new and deleted files: parsed, nothing written or pruned.
  write_file(paths[0], test_source(40));
  write_file(file("test_new.py"), test_source(41));
  ASSERT_EQ(::unlink(paths[3].c_str()), 0);
  std::vector<std::string> now = {paths[0], paths[1], paths[2], file("test_new.py")};
  out = scan(cache, now, stats);
  EXPECT_TRUE(same_modules(out, expected(now)));
  EXPECT_EQ(stats.parsed, 2U);
  EXPECT_EQ(stats.trusted, 2U);
  EXPECT_EQ(stats.pruned, 0U);
  EXPECT_FALSE(stats.wrote);
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  EXPECT_EQ(cache.row_count(), 4U);
  EXPECT_EQ(read_file(db_), bytes);
  EXPECT_TRUE(same_time(stat_of(db_).st_mtim, mtime));
}

// A read-only checkout: the folder is not writable for the user, so SQLite cannot create the -shm file a
// WAL reader needs; the cache falls back to an immutable open and still serves its rows. Runs the reader as
// uid/gid 65534 in a forked child (needs root to switch users; skipped otherwise).
TEST_F(CacheReadOnly, FolderNotWritableFallsBackToImmutableOpen) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the reader as another user";
  auto paths = make_files(3);
  sleep_past_racy_window();
  make_valid_db(paths);
  ASSERT_FALSE(exists(db_ + "-shm"));
  ASSERT_EQ(::chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(db_.c_str(), 0644), 0);
  for (const auto& p : paths) ASSERT_EQ(::chmod(p.c_str(), 0644), 0);
  const std::string bytes = read_file(db_);
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
    DiscoveryCache cache(db_, true);
    if (!cache.usable()) ::_exit(11);
    CacheStats stats;
    auto out = cache.scan(paths, NameRules{}, 1, stats);
    // chmod above changed the files' ctime: rows are rehashed (bytes unchanged), not parsed
    if (stats.trusted + stats.rehashed != 3 || stats.parsed != 0 || stats.wrote) ::_exit(12);
    if (!stats.warning.empty()) ::_exit(13);
    ::_exit(out.size() == 3 && out[0].functions.size() == 1 ? 0 : 14);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10 setuid, 11 unusable, 12 ladder, 13 warning, 14 results";
  EXPECT_EQ(read_file(db_), bytes);
  EXPECT_FALSE(exists(db_ + "-shm"));
}

// A path still asked for whose file is gone: its row is pruned.
TEST_F(CacheLadder, AskedForPathThatVanishedIsPruned) {
  auto paths = make_files(3);
  {
    DiscoveryCache cache(db_, false);
    CacheStats stats;
    scan(cache, paths, stats);
    ASSERT_EQ(cache.row_count(), 3U);
  }
  ASSERT_EQ(::unlink(paths[1].c_str()), 0);
  DiscoveryCache cache(db_, false);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_FALSE(out[1].error.empty());
  EXPECT_EQ(stats.pruned, 1U);
  EXPECT_EQ(cache.row_count(), 2U);
}

// The path goes to SQLite as a plain file name: '#', '?' and '%' are not URI syntax.
TEST_F(CacheReadOnly, PathWithUriSpecialCharacters) {
  const std::string sub = file("odd#dir?x=1%41");
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  db_ = sub + "/cache.db";
  auto paths = make_files(3);
  make_valid_db(paths);
  DiscoveryCache cache(db_, true);
  EXPECT_TRUE(cache.usable());
  EXPECT_TRUE(cache.open_warning().empty()) << cache.open_warning();
  EXPECT_EQ(cache.row_count(), 3U);
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_EQ(stats.parsed, 0U);
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
}

TEST_F(CacheReadOnly, OtherSchemaVersionIsNotSetAside) {
  {
    SqliteDb db = open_sqlite(db_);
    exec(db.get(), "CREATE TABLE t(x); PRAGMA user_version = 99;");
  }
  const std::string bytes = read_file(db_);
  auto paths = make_files(2);
  DiscoveryCache cache(db_, true);
  EXPECT_FALSE(cache.usable());
  EXPECT_FALSE(cache.open_warning().empty());
  CacheStats stats;
  auto out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_EQ(stats.parsed, 2U);
  EXPECT_FALSE(stats.warning.empty());
  EXPECT_EQ(read_file(db_), bytes);
  EXPECT_FALSE(exists(db_ + ".corrupt"));
}

// ---------------------------------------------------------------------------------------------------------
// Busy
// ---------------------------------------------------------------------------------------------------------

class CacheBusy : public CacheTest {};

bool contains_busy(const std::string& s) {
  return s.find("busy") != std::string::npos || s.find("locked") != std::string::npos;
}

TEST_F(CacheBusy, WriteLockHeldElsewhereSkipsWritingThenWritesOnceReleased) {
  auto paths = make_files(4);
  std::vector<std::string> first(paths.begin(), paths.begin() + 2);
  make_valid_db(first);
  SqliteDb other = open_sqlite(db_);
  exec(other.get(), "BEGIN IMMEDIATE");

  DiscoveryCache cache(db_, false, 100);
  ASSERT_TRUE(cache.usable()) << cache.open_warning();
  CacheStats stats;
  auto t0 = std::chrono::steady_clock::now();
  auto out = scan(cache, paths, stats);
  double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_FALSE(stats.wrote);
  EXPECT_TRUE(contains_busy(stats.warning)) << stats.warning;
  EXPECT_EQ(stats.parsed, 2U);  // the rows of the first two files were still read
  EXPECT_GE(waited, 0.09);
  EXPECT_LT(waited, 5.0);  // the 100 ms timeout, not the 10 s default
  EXPECT_EQ(cache.row_count(), 2U);

  exec(other.get(), "ROLLBACK");
  out = scan(cache, paths, stats);
  EXPECT_TRUE(same_modules(out, expected(paths)));
  EXPECT_TRUE(stats.wrote) << stats.warning;
  EXPECT_TRUE(stats.warning.empty()) << stats.warning;
  EXPECT_EQ(stats.parsed, 2U);
  EXPECT_EQ(cache.row_count(), 4U);
}

TEST_F(CacheBusy, LockedNewFileIsNotMistakenForCorruption) {
  auto paths = make_files(2);
  SqliteDb other = open_sqlite(db_);
  exec(other.get(), "BEGIN IMMEDIATE");
  {
    DiscoveryCache cache(db_, false, 100);
    EXPECT_TRUE(contains_busy(cache.open_warning())) << cache.open_warning();
    CacheStats stats;
    auto out = scan(cache, paths, stats);
    EXPECT_TRUE(same_modules(out, expected(paths)));
    EXPECT_FALSE(stats.wrote);
    EXPECT_FALSE(stats.warning.empty());
    EXPECT_FALSE(exists(db_ + ".corrupt"));
  }
  exec(other.get(), "ROLLBACK");
  other.reset();
  DiscoveryCache cache(db_, false, 100);
  EXPECT_TRUE(cache.usable());
  EXPECT_TRUE(cache.open_warning().empty()) << cache.open_warning();
  CacheStats stats;
  scan(cache, paths, stats);
  EXPECT_TRUE(stats.wrote);
  EXPECT_EQ(cache.row_count(), 2U);
}

// ---------------------------------------------------------------------------------------------------------
// remove_files
// ---------------------------------------------------------------------------------------------------------

class CacheFiles : public CacheTest {};

TEST_F(CacheFiles, RemoveFilesRemovesTheDatabaseAndItsCompanions) {
  for (const char* suffix : {"", "-wal", "-shm"}) write_file(db_ + suffix, "x");
  write_file(db_ + ".corrupt", "kept");
  std::string error;
  EXPECT_TRUE(DiscoveryCache::remove_files(db_, error)) << error;
  EXPECT_TRUE(error.empty());
  for (const char* suffix : {"", "-wal", "-shm"}) EXPECT_FALSE(exists(db_ + suffix)) << suffix;
  EXPECT_TRUE(exists(db_ + ".corrupt"));
  // Missing files are fine, and so is a partial set.
  EXPECT_TRUE(DiscoveryCache::remove_files(db_, error)) << error;
  write_file(db_ + "-shm", "x");
  EXPECT_TRUE(DiscoveryCache::remove_files(db_, error)) << error;
  EXPECT_FALSE(exists(db_ + "-shm"));
}

TEST_F(CacheFiles, RemoveFilesOfARealCacheThenStartsOver) {
  auto paths = make_files(2);
  make_valid_db(paths);
  std::string error;
  ASSERT_TRUE(DiscoveryCache::remove_files(db_, error)) << error;
  EXPECT_FALSE(exists(db_));
  DiscoveryCache cache(db_, false);
  EXPECT_EQ(cache.row_count(), 0U);
  CacheStats stats;
  scan(cache, paths, stats);
  EXPECT_EQ(stats.parsed, 2U);
}

TEST_F(CacheFiles, RemoveFilesReportsAFailure) {
  ASSERT_EQ(::mkdir((db_ + "-wal").c_str(), 0755), 0);
  write_file(db_ + "-wal/keep", "x");  // a non-empty folder cannot be unlinked
  std::string error;
  EXPECT_FALSE(DiscoveryCache::remove_files(db_, error));
  EXPECT_NE(error.find(db_ + "-wal"), std::string::npos) << error;
}

// ---- fingerprint_files ----------------------------------------------------------------------------------------

TEST(Fingerprint, StatAndHashOfFilesInOrder) {
  TempDir dir;
  std::string a = dir.path() + "/a.py", b = dir.path() + "/b.py";
  write_file(a, "x = 1\n");
  write_file(b, "x = 1\n");
  auto fps = fingerprint_files({a, b, dir.path() + "/missing.py", dir.path()}, true, 2);
  ASSERT_EQ(fps.size(), 4u);
  EXPECT_TRUE(fps[0].stat.ok);
  EXPECT_EQ(fps[0].stat.size, 6);
  EXPECT_TRUE(fps[0].hashed);
  EXPECT_EQ(fps[0].xxh3, fps[1].xxh3);  // same bytes, same hash
  EXPECT_EQ(fps[0].xxh3, xxh3_of("x = 1\n"));
  EXPECT_FALSE(fps[2].stat.ok);
  EXPECT_EQ(fps[2].stat.err, ENOENT);
  EXPECT_FALSE(fps[2].hashed);
  EXPECT_FALSE(fps[3].stat.ok);  // a folder is not a regular file
  EXPECT_EQ(fps[3].stat.err, EISDIR);
}

TEST(Fingerprint, HashFollowsContentNotName) {
  TempDir dir;
  std::string a = dir.path() + "/a.py";
  write_file(a, "x = 1\n");
  auto before = fingerprint_files({a}, true, 1)[0];
  write_file(a, "x = 2\n");  // same size, different bytes
  auto after = fingerprint_files({a}, true, 1)[0];
  EXPECT_EQ(before.stat.size, after.stat.size);
  EXPECT_NE(before.xxh3, after.xxh3);
  auto stat_only = fingerprint_files({a}, false, 1)[0];
  EXPECT_FALSE(stat_only.hashed);
  EXPECT_EQ(stat_only.stat.mtime_ns, after.stat.mtime_ns);
}

}  // namespace
}  // namespace fastcollect
