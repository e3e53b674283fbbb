#include "scan/scanner.hpp"

#include <sys/stat.h>
#include <tree_sitter/api.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/parallel.hpp"
#include "walk/fnmatch.hpp"

extern "C" const TSLanguage* tree_sitter_python(void);

namespace fastcollect {

std::size_t ModuleInfo::test_count(const std::vector<std::string>& python_classes) const {
  std::size_t n = functions.size();
  for (const auto& c : classes) {
    if (c.has_init || c.has_new || c.test_attr == 0) continue;
    if (!matches_prefix_or_glob(c.name, python_classes)) continue;
    n += c.methods.size();
  }
  return n;
}

bool is_valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size(), i = 0;
  while (i < n) {
    unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

namespace {

struct ParserDeleter {
  void operator()(TSParser* p) const { ts_parser_delete(p); }
};
struct TreeDeleter {
  void operator()(TSTree* t) const { ts_tree_delete(t); }
};

// Names whose call at module or class level can bind names invisibly.
const std::set<std::string> kDynamicCalls = {"globals", "locals", "vars", "exec", "setattr", "__import__"};

class ModuleVisitor {
 public:
  ModuleVisitor(std::string_view src, const NameRules& rules, ModuleInfo& out) : src_(src), rules_(rules), out_(out) {}

  void run(TSNode root) {
    prepass_block(root);
    visit_block(root, Scope::Module, false, nullptr, "");
  }

 private:
  enum class Scope { Module, Class };

  std::string text(TSNode n) const {
    uint32_t a = ts_node_start_byte(n), b = ts_node_end_byte(n);
    return std::string(src_.substr(a, b - a));
  }
  static int line(TSNode n) { return static_cast<int>(ts_node_start_point(n).row) + 1; }
  static bool is(TSNode n, const char* type) { return std::strcmp(ts_node_type(n), type) == 0; }
  static TSNode field(TSNode n, const char* name) {
    return ts_node_child_by_field_name(n, name, static_cast<uint32_t>(std::strlen(name)));
  }

  void uncertain(const std::string& why) {
    out_.certain = false;
    for (const auto& r : out_.uncertain_reasons)
      if (r == why) return;
    out_.uncertain_reasons.push_back(why);
  }

  // Dotted text of an identifier/attribute chain ("pytest.mark.slow"), or "" if it is anything else.
  std::string dotted(TSNode n) const {
    if (is(n, "identifier")) return text(n);
    if (is(n, "attribute")) {
      TSNode obj = field(n, "object"), attr = field(n, "attribute");
      if (ts_node_is_null(obj) || ts_node_is_null(attr)) return "";
      std::string left = dotted(obj);
      if (left.empty()) return "";
      return left + "." + text(attr);
    }
    return "";
  }

  // The mark name an expression denotes (`pytest.mark.X`, `pytest.mark.X(...)`, `mark.X`, an alias), or "".
  std::string mark_name(TSNode expr) const {
    TSNode head = expr;
    while (is(head, "call")) head = field(head, "function");
    if (ts_node_is_null(head)) return "";
    std::string d = dotted(head);
    if (d.empty()) return "";
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (true) {
      std::size_t dot = d.find('.', start);
      parts.push_back(d.substr(start, dot - start));
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    if (parts.size() >= 3 && pytest_names_.count(parts[0]) && parts[1] == "mark") return parts[2];
    if (parts.size() >= 2 && mark_names_.count(parts[0])) return parts[1];
    if (parts.size() == 1) {
      for (const auto& [alias, target] : out_.mark_aliases)
        if (alias == parts[0]) return target;
    }
    return "";
  }

  // First pass over module-level statements (through if/try/with): who is pytest, who is pytest.mark,
  // and which names alias a mark, so decorators anywhere can be classified.
  void prepass_block(TSNode block) {
    uint32_t n = ts_node_named_child_count(block);
    for (uint32_t i = 0; i < n; ++i) {
      TSNode st = ts_node_named_child(block, i);
      if (is(st, "import_statement")) {
        uint32_t m = ts_node_named_child_count(st);
        for (uint32_t k = 0; k < m; ++k) {
          TSNode nm = ts_node_named_child(st, k);
          if (is(nm, "aliased_import") && text(field(nm, "name")) == "pytest")
            pytest_names_.insert(text(field(nm, "alias")));
        }
      } else if (is(st, "import_from_statement")) {
        TSNode mod = field(st, "module_name");
        std::string modtext = ts_node_is_null(mod) ? "" : text(mod);
        if (modtext == "pytest" || modtext == "_pytest.mark") {
          uint32_t m = ts_node_named_child_count(st);
          for (uint32_t k = 0; k < m; ++k) {
            TSNode nm = ts_node_named_child(st, k);
            if (ts_node_eq(nm, mod)) continue;
            if (is(nm, "dotted_name") && text(nm) == "mark") mark_names_.insert("mark");
            if (is(nm, "aliased_import") && text(field(nm, "name")) == "mark")
              mark_names_.insert(text(field(nm, "alias")));
          }
        }
      } else if (is(st, "expression_statement")) {
        TSNode a = ts_node_named_child(st, 0);
        if (!ts_node_is_null(a) && is(a, "assignment")) {
          TSNode left = field(a, "left"), right = field(a, "right");
          if (!ts_node_is_null(left) && !ts_node_is_null(right) && is(left, "identifier")) {
            std::string target = mark_name(right);
            if (!target.empty()) out_.mark_aliases.emplace_back(text(left), target);
          }
        }
      } else if (is_compound(st)) {
        for_each_sub_block(st, [this](TSNode b) { prepass_block(b); });
      }
    }
  }

  static bool is_compound(TSNode st) {
    return is(st, "if_statement") || is(st, "try_statement") || is(st, "with_statement") || is(st, "for_statement") ||
           is(st, "while_statement") || is(st, "match_statement") ||
           is(st, "case_clause");  // the statements of a match block's body are its case clauses
  }

  // Calls `fn` for every block of a compound statement (if/elif/else, try/except/else/finally, with, for,
  // while, match/case), at any clause depth, without entering nested function or class definitions.
  template <typename Fn>
  void for_each_sub_block(TSNode st, Fn&& fn) {
    uint32_t n = ts_node_named_child_count(st);
    for (uint32_t i = 0; i < n; ++i) {
      TSNode c = ts_node_named_child(st, i);
      if (is(c, "block")) {
        fn(c);
      } else {
        const char* t = ts_node_type(c);
        std::size_t len = std::strlen(t);
        bool clause = len > 7 && std::strcmp(t + len - 7, "_clause") == 0;
        if (clause || is(c, "case_block")) for_each_sub_block(c, fn);
      }
    }
  }

  void visit_block(TSNode block, Scope scope, bool conditional, ClassInfo* cls, const std::string& qual) {
    uint32_t n = ts_node_named_child_count(block);
    for (uint32_t i = 0; i < n; ++i) {
      TSNode st = ts_node_named_child(block, i);
      visit_statement(st, scope, conditional, cls, qual);
    }
  }

  // `cls` is the class whose body is being visited (a local object, stable while its body is visited).
  void visit_statement(TSNode st, Scope scope, bool conditional, ClassInfo* cls, const std::string& qual) {
    if (is(st, "decorated_definition")) {
      std::vector<TSNode> decorators;
      uint32_t m = ts_node_named_child_count(st);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode c = ts_node_named_child(st, k);
        if (is(c, "decorator")) decorators.push_back(c);
      }
      TSNode def = field(st, "definition");
      if (ts_node_is_null(def)) return;
      visit_definition(def, decorators, scope, conditional, cls, qual);
      return;
    }
    if (is(st, "function_definition") || is(st, "class_definition")) {
      visit_definition(st, {}, scope, conditional, cls, qual);
      return;
    }
    if (is(st, "import_statement") || is(st, "import_from_statement") || is(st, "future_import_statement")) {
      visit_import(st, scope, conditional, cls, /*local=*/false);
      return;
    }
    if (is_compound(st)) {
      check_dynamic(st, true);
      for_each_sub_block(st, [&](TSNode b) { visit_block(b, scope, true, cls, qual); });
      return;
    }
    if (is(st, "expression_statement")) {
      check_dynamic(st, false);
      uint32_t m = ts_node_named_child_count(st);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode e = ts_node_named_child(st, k);
        if (is(e, "assignment")) visit_assignment(e, scope, conditional, cls);
      }
      return;
    }
    if (is(st, "delete_statement") || is(st, "global_statement")) return;
    collect_imports(st);
  }

  // globals()/exec/setattr... at module or class level (not inside def bodies) can bind test names.
  void check_dynamic(TSNode n, bool skip_blocks) {
    if (is(n, "function_definition") || is(n, "class_definition") || is(n, "lambda") || is(n, "decorated_definition"))
      return;
    if (skip_blocks && is(n, "block")) return;  // blocks of compound statements are visited statement-wise
    if (is(n, "call")) {
      TSNode f = field(n, "function");
      if (!ts_node_is_null(f) && is(f, "identifier")) {
        std::string name = text(f);
        if (kDynamicCalls.count(name))
          uncertain(name + "() at module or class level (line " + std::to_string(line(n)) + ")");
      }
    }
    uint32_t m = ts_node_named_child_count(n);
    for (uint32_t k = 0; k < m; ++k) check_dynamic(ts_node_named_child(n, k), skip_blocks);
  }

  void visit_definition(TSNode def, const std::vector<TSNode>& decorators, Scope scope, bool conditional,
                        ClassInfo* cls, const std::string& qual) {
    TSNode name_node = field(def, "name");
    if (ts_node_is_null(name_node)) return;
    std::string name = text(name_node);
    std::vector<MarkInfo> marks;
    std::vector<std::string> others;
    for (TSNode d : decorators) {
      TSNode expr = ts_node_named_child(d, 0);
      if (ts_node_is_null(expr)) continue;
      std::string mn = mark_name(expr);
      if (!mn.empty())
        marks.push_back({mn, text(expr), line(expr)});
      else
        others.push_back(text(expr));
    }
    if (is(def, "function_definition")) {
      TSNode body = field(def, "body");
      if (!ts_node_is_null(body)) collect_imports(body);
      if (scope == Scope::Module) {
        if (name == "pytest_generate_tests")
          out_.defines_generate_tests = true;
        else if (name.rfind("pytest_", 0) == 0)
          out_.defines_hooks = true;
      }
      if (scope == Scope::Class) {
        if (name == "__init__") cls->has_init = true;
        if (name == "__new__") cls->has_new = true;
        if (name == "pytest_generate_tests") out_.defines_generate_tests = true;
      }
      if (!matches_prefix_or_glob(name, rules_.python_functions)) return;
      FunctionInfo fi;
      fi.name = name;
      fi.line = line(def);
      fi.conditional = conditional;
      fi.marks = std::move(marks);
      fi.other_decorators = std::move(others);
      TSNode first = ts_node_child(def, 0);
      fi.is_async = !ts_node_is_null(first) && is(first, "async");
      if (scope == Scope::Class)
        cls->methods.push_back(std::move(fi));
      else
        out_.functions.push_back(std::move(fi));
      return;
    }
    // class_definition
    ClassInfo ci;
    ci.name = name;
    ci.qualname = qual.empty() ? name : qual + "." + name;
    ci.line = line(def);
    ci.conditional = conditional;
    ci.marks = std::move(marks);
    ci.other_decorators = std::move(others);
    TSNode supers = field(def, "superclasses");
    if (!ts_node_is_null(supers)) {
      uint32_t m = ts_node_named_child_count(supers);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode b = ts_node_named_child(supers, k);
        if (is(b, "keyword_argument") || is(b, "comment")) continue;
        ci.bases.push_back(text(b));
      }
    }
    // Reserve the slot first so that classes stay in source (pre-)order: nested classes are appended
    // while the body is visited, after their outer class.
    std::size_t slot = out_.classes.size();
    out_.classes.push_back(ClassInfo{});
    TSNode body = field(def, "body");
    if (!ts_node_is_null(body)) visit_block(body, Scope::Class, false, &ci, ci.qualname);
    out_.classes[slot] = std::move(ci);
  }

  // `local`: the import is inside a function body; it feeds the import graph but binds no module name.
  void visit_import(TSNode st, Scope scope, bool conditional, ClassInfo* cls, bool local) {
    ImportInfo imp;
    imp.line = line(st);
    if (is(st, "future_import_statement")) return;
    if (is(st, "import_statement")) {
      uint32_t m = ts_node_named_child_count(st);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode nm = ts_node_named_child(st, k);
        ImportInfo one = imp;
        if (is(nm, "aliased_import")) nm = field(nm, "name");
        if (ts_node_is_null(nm)) continue;
        one.module = text(nm);
        out_.imports.push_back(std::move(one));
      }
      return;
    }
    imp.is_from = true;
    TSNode mod = field(st, "module_name");
    if (!ts_node_is_null(mod)) {
      if (is(mod, "relative_import")) {
        uint32_t m = ts_node_named_child_count(mod);
        for (uint32_t k = 0; k < m; ++k) {
          TSNode c = ts_node_named_child(mod, k);
          if (is(c, "import_prefix")) imp.level = static_cast<int>(ts_node_end_byte(c) - ts_node_start_byte(c));
          if (is(c, "dotted_name")) imp.module = text(c);
        }
      } else {
        imp.module = text(mod);
      }
    }
    uint32_t m = ts_node_named_child_count(st);
    for (uint32_t k = 0; k < m; ++k) {
      TSNode c = ts_node_named_child(st, k);
      if (!ts_node_is_null(mod) && ts_node_eq(c, mod)) continue;
      if (is(c, "wildcard_import")) {
        imp.star = true;
        if (!local)
          uncertain("star import from '" + std::string(imp.level, '.') + imp.module + "' (line " +
                    std::to_string(imp.line) + ")");
        continue;
      }
      std::string original, bound;
      if (is(c, "aliased_import")) {
        original = text(field(c, "name"));
        bound = text(field(c, "alias"));
      } else if (is(c, "dotted_name")) {
        original = bound = text(c);
      } else {
        continue;
      }
      imp.names.push_back(original);
      if (!local) bind_name(bound, imp.line, scope, conditional, cls);
    }
    out_.imports.push_back(std::move(imp));
  }

  // A name bound by assignment or import at module/class level: pytest collects it if it is test-shaped
  // and callable (function) or a class (python_classes); its shape is unknown statically.
  void bind_name(const std::string& name, int ln, Scope scope, bool conditional, ClassInfo* cls) {
    bool fn_shaped = matches_prefix_or_glob(name, rules_.python_functions);
    bool cls_shaped = matches_prefix_or_glob(name, rules_.python_classes);
    if (!fn_shaped && !cls_shaped) return;
    FunctionInfo fi;
    fi.name = name;
    fi.line = ln;
    fi.conditional = conditional;
    fi.is_def = false;
    if (scope == Scope::Class) {
      cls->methods.push_back(std::move(fi));
    } else {
      out_.functions.push_back(std::move(fi));
    }
  }

  void visit_assignment(TSNode a, Scope scope, bool conditional, ClassInfo* cls) {
    TSNode left = field(a, "left"), right = field(a, "right");
    if (ts_node_is_null(left)) return;
    if (is(left, "identifier")) {
      std::string name = text(left);
      if (name == "pytestmark" && !ts_node_is_null(right)) {
        auto& marks = scope == Scope::Class ? cls->marks : out_.module_marks;
        read_pytestmark(right, marks);
        return;
      }
      if (name == "__test__") {
        int v = 2;
        if (!ts_node_is_null(right)) {
          if (is(right, "true")) v = 1;
          if (is(right, "false")) v = 0;
        }
        if (scope == Scope::Class)
          cls->test_attr = v;
        else
          out_.module_test_attr = v;
        return;
      }
      bind_name(name, line(a), scope, conditional, cls);
      // Chained assignment `a = b = value`: the right side is itself an assignment.
      if (!ts_node_is_null(right) && is(right, "assignment")) visit_assignment(right, scope, conditional, cls);
      return;
    }
    if (is(left, "pattern_list") || is(left, "tuple_pattern") || is(left, "list_pattern")) {
      uint32_t m = ts_node_named_child_count(left);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode c = ts_node_named_child(left, k);
        if (is(c, "identifier")) bind_name(text(c), line(a), scope, conditional, cls);
      }
      return;
    }
    // Subscript or attribute targets (e.g. globals()[...] = f) are handled by check_dynamic.
  }

  void read_pytestmark(TSNode right, std::vector<MarkInfo>& marks) {
    auto one = [&](TSNode e) {
      std::string mn = mark_name(e);
      marks.push_back({mn, text(e), line(e)});  // name "" = a mark we cannot name statically
    };
    if (is(right, "list") || is(right, "tuple")) {
      uint32_t m = ts_node_named_child_count(right);
      for (uint32_t k = 0; k < m; ++k) {
        TSNode e = ts_node_named_child(right, k);
        if (!is(e, "comment")) one(e);
      }
    } else {
      one(right);
    }
  }

  // Imports anywhere inside a subtree (function bodies: lazy imports count for the import graph).
  void collect_imports(TSNode n) {
    if (is(n, "import_statement") || is(n, "import_from_statement")) {
      visit_import(n, Scope::Module, true, nullptr, /*local=*/true);
      return;
    }
    uint32_t m = ts_node_named_child_count(n);
    for (uint32_t k = 0; k < m; ++k) collect_imports(ts_node_named_child(n, k));
  }

  std::string_view src_;
  const NameRules& rules_;
  ModuleInfo& out_;
  std::set<std::string> pytest_names_{"pytest"};
  std::set<std::string> mark_names_;
};

}  // namespace

struct Scanner::Impl {
  NameRules rules;
  std::unique_ptr<TSParser, ParserDeleter> parser{ts_parser_new()};
};

Scanner::Scanner(NameRules rules) : impl_(std::make_unique<Impl>()) {
  impl_->rules = std::move(rules);
  ts_parser_set_language(impl_->parser.get(), tree_sitter_python());
}

Scanner::~Scanner() = default;

ModuleInfo Scanner::scan_source(std::string_view source, const std::string& path) {
  ModuleInfo info;
  info.path = path;
  if (source.size() >= 3 && static_cast<unsigned char>(source[0]) == 0xEF &&
      static_cast<unsigned char>(source[1]) == 0xBB && static_cast<unsigned char>(source[2]) == 0xBF)
    source.remove_prefix(3);
  for (char c : source)
    if (c == '\n') ++info.lines;
  if (!is_valid_utf8(source)) {
    info.error = "not valid UTF-8 (a PEP 263 coding declaration is not interpreted)";
    info.certain = false;
    info.uncertain_reasons.push_back(info.error);
    return info;
  }
  std::unique_ptr<TSTree, TreeDeleter> tree(
      ts_parser_parse_string(impl_->parser.get(), nullptr, source.data(), static_cast<uint32_t>(source.size())));
  if (!tree) {
    info.error = "tree-sitter returned no tree";
    info.certain = false;
    info.uncertain_reasons.push_back(info.error);
    return info;
  }
  TSNode root = ts_tree_root_node(tree.get());
  if (ts_node_has_error(root)) {
    info.parse_error = true;
    info.certain = false;
    info.uncertain_reasons.push_back("syntax error");
  }
  ModuleVisitor(source, impl_->rules, info).run(root);
  return info;
}

ModuleInfo Scanner::scan_file(const std::string& path) {
  constexpr std::size_t kMaxBytes = 64U << 20U;
  std::ifstream in(path, std::ios::binary);
  int open_errno = errno;
  struct stat st {};
  // A folder opens fine as an ifstream on Linux and then reads as empty: report it instead.
  bool is_dir = in && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  if (!in || is_dir)
    return ModuleInfo::failed(path, std::string("cannot open: ") + std::strerror(is_dir ? EISDIR : open_errno));
  std::ostringstream buf;
  buf << in.rdbuf();
  std::string data = buf.str();
  if (data.size() > kMaxBytes) return ModuleInfo::failed(path, "larger than 64 MiB: not scanned");
  return scan_source(data, path);
}

std::vector<ModuleInfo> scan_files(const std::vector<std::string>& paths, const NameRules& rules, unsigned threads) {
  std::vector<ModuleInfo> out(paths.size());
  run_workers(paths.size(), threads, [&](unsigned, auto& next) {
    Scanner scanner(rules);
    std::size_t i = 0;
    while (next(i)) {
      try {
        out[i] = scanner.scan_file(paths[i]);
      } catch (const std::exception& e) {  // e.g. bad_alloc: recorded per file, never thrown across threads
        out[i] = ModuleInfo::failed(paths[i], std::string("scanner failure: ") + e.what());
      }
    }
  });
  return out;
}

}  // namespace fastcollect
