// Import graph: module names from import roots, import resolution (absolute, from, relative), reverse closure.
#include "graph/import_graph.hpp"

#include <algorithm>
#include <stdexcept>
#include <string_view>

namespace fastcollect {
namespace {

bool is_identifier(std::string_view s) {
  if (s.empty()) return false;
  unsigned char c0 = static_cast<unsigned char>(s[0]);
  if (c0 >= '0' && c0 <= '9') return false;
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    // Non-ASCII bytes are accepted wholesale (Python allows most Unicode letters in identifiers).
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
    if (!ok) return false;
  }
  return true;
}

std::string strip_root(std::string root) {
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  return root;
}

/// Dotted name of `path` relative to `root` (no trailing '/'), or "" when it is not under root or not
/// importable by that name. `is_init` is set for `__init__.py`.
std::string name_under(const std::string& path, const std::string& root, bool& is_init) {
  std::size_t start;
  if (root == "/") {
    if (path.empty() || path[0] != '/') return {};
    start = 1;
  } else {
    if (path.size() <= root.size() + 1 || path.compare(0, root.size(), root) != 0 || path[root.size()] != '/')
      return {};
    start = root.size() + 1;
  }
  std::string_view rel(path);
  rel.remove_prefix(start);
  constexpr std::string_view kSuffix = ".py";
  if (rel.size() <= kSuffix.size() || rel.substr(rel.size() - kSuffix.size()) != kSuffix) return {};
  rel.remove_suffix(kSuffix.size());
  std::string out;
  is_init = false;
  while (true) {
    std::size_t slash = rel.find('/');
    std::string_view part = rel.substr(0, slash);
    bool last = slash == std::string_view::npos;
    if (last && part == "__init__") {
      is_init = true;
      return out;  // "" for root/__init__.py: not importable
    }
    if (!is_identifier(part)) return {};
    if (!out.empty()) out += '.';
    out.append(part);
    if (last) return out;
    rel.remove_prefix(slash + 1);
  }
}

/// Module text as the scanner saw it may hold whitespace or line continuations (`a . b`); keep the name.
std::string clean_dotted(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    if (ch == ' ' || ch == '\t' || ch == '\\' || ch == '\n' || ch == '\r' || ch == '\f') continue;
    out += ch;
  }
  return out;
}

}  // namespace

ImportGraph::ImportGraph(const std::vector<std::string>& paths, const std::vector<std::vector<ImportInfo>>& imports,
                         const std::vector<std::string>& roots) {
  if (paths.size() != imports.size()) throw std::invalid_argument("ImportGraph: paths and imports differ in length");
  std::vector<const std::vector<ImportInfo>*> ptrs;
  ptrs.reserve(imports.size());
  for (const auto& v : imports) ptrs.push_back(&v);
  build(paths, ptrs, roots);
}

ImportGraph::ImportGraph(const std::vector<std::string>& paths, const std::vector<ModuleInfo>& modules,
                         const std::vector<std::string>& roots) {
  if (paths.size() != modules.size()) throw std::invalid_argument("ImportGraph: paths and modules differ in length");
  std::vector<const std::vector<ImportInfo>*> ptrs;
  ptrs.reserve(modules.size());
  for (const auto& m : modules) ptrs.push_back(&m.imports);
  build(paths, ptrs, roots);
}

void ImportGraph::build(const std::vector<std::string>& paths,
                        const std::vector<const std::vector<ImportInfo>*>& imports,
                        const std::vector<std::string>& raw_roots) {
  std::vector<std::string> roots;
  roots.reserve(raw_roots.size());
  for (const auto& r : raw_roots) roots.push_back(strip_root(r));

  // Nodes, merged by path; each node's imports (a merged node keeps all of them).
  std::vector<std::vector<const std::vector<ImportInfo>*>> node_imports;
  nodes_.reserve(paths.size());
  index_.reserve(paths.size() * 2);
  for (std::size_t i = 0; i < paths.size(); ++i) {
    auto [it, inserted] = index_.emplace(paths[i], static_cast<std::uint32_t>(nodes_.size()));
    if (inserted) {
      nodes_.push_back(Node{paths[i], {}, false, {}, {}});
      node_imports.emplace_back();
    }
    node_imports[it->second].push_back(imports[i]);
  }

  // Names: every (file, root) pair that yields an importable name is a candidate for that name.
  names_.reserve(nodes_.size() * 2);
  for (std::uint32_t n = 0; n < nodes_.size(); ++n) {
    Node& node = nodes_[n];
    bool first = true;
    for (std::size_t r = 0; r < roots.size(); ++r) {
      bool is_init = false;
      std::string name = name_under(node.path, roots[r], is_init);
      if (name.empty()) continue;
      if (first) {
        node.name = name;
        node.is_init = is_init;
        first = false;
      }
      std::uint32_t rank = static_cast<std::uint32_t>(2 * r + (is_init ? 0 : 1));
      auto [it, inserted] = names_.emplace(std::move(name), Candidate{n, rank});
      if (!inserted && rank < it->second.rank) it->second = Candidate{n, rank};
    }
  }

  // Edges.
  std::string target;
  for (std::uint32_t n = 0; n < nodes_.size(); ++n) {
    std::vector<std::uint32_t> deps;
    // The importing file's package (__package__), for relative imports.
    std::string package;
    const Node& self = nodes_[n];
    if (self.is_init) {
      package = self.name;
    } else {
      std::size_t dot = self.name.rfind('.');
      if (dot != std::string::npos) package = self.name.substr(0, dot);
    }
    for (const auto* list : node_imports[n]) {
      for (const ImportInfo& imp : *list) {
        std::string module = clean_dotted(imp.module);
        if (imp.level > 0) {
          // importlib._bootstrap._resolve_name: bits = package.rsplit('.', level - 1); base = bits[0].
          if (package.empty()) continue;  // "attempted relative import with no known parent package"
          std::string_view base(package);
          bool beyond = false;
          for (int k = 1; k < imp.level; ++k) {
            std::size_t dot = base.rfind('.');
            if (dot == std::string_view::npos) {
              beyond = true;
              break;
            }
            base = base.substr(0, dot);
          }
          if (beyond) continue;  // "attempted relative import beyond top-level package"
          target.assign(base);
          if (!module.empty()) {
            target += '.';
            target += module;
          }
        } else {
          if (module.empty()) continue;
          target = module;
        }
        add_module_chain(target, deps);
        if (imp.is_from) {
          for (const std::string& raw : imp.names) {
            std::string name = clean_dotted(raw);
            if (name.empty() || name == "*") continue;
            long id = lookup(target + "." + name);
            if (id >= 0) deps.push_back(static_cast<std::uint32_t>(id));
          }
        }
      }
    }
    std::sort(deps.begin(), deps.end());
    deps.erase(std::unique(deps.begin(), deps.end()), deps.end());
    deps.erase(std::remove(deps.begin(), deps.end(), n), deps.end());
    nodes_[n].deps = std::move(deps);
  }
  for (std::uint32_t n = 0; n < nodes_.size(); ++n)
    for (std::uint32_t d : nodes_[n].deps) nodes_[d].rdeps.push_back(n);
}

long ImportGraph::lookup(const std::string& name) const {
  auto it = names_.find(name);
  return it == names_.end() ? -1 : static_cast<long>(it->second.node);
}

void ImportGraph::add_module_chain(const std::string& name, std::vector<std::uint32_t>& out) const {
  // `import a.b.c` imports a, a.b, a.b.c in turn.
  std::size_t pos = 0;
  while (true) {
    std::size_t dot = name.find('.', pos);
    long id = lookup(dot == std::string::npos ? name : name.substr(0, dot));
    if (id >= 0) out.push_back(static_cast<std::uint32_t>(id));
    if (dot == std::string::npos) return;
    pos = dot + 1;
  }
}

std::vector<std::string> ImportGraph::to_paths(const std::vector<std::uint32_t>& ids) const {
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (std::uint32_t id : ids) out.push_back(nodes_[id].path);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ImportGraph::dependencies(const std::string& path) const {
  auto it = index_.find(path);
  if (it == index_.end()) return {};
  return to_paths(nodes_[it->second].deps);
}

std::vector<std::string> ImportGraph::dependents(const std::string& path) const {
  auto it = index_.find(path);
  if (it == index_.end()) return {};
  return to_paths(nodes_[it->second].rdeps);
}

std::vector<std::string> ImportGraph::reverse_closure(const std::vector<std::string>& changed) const {
  std::vector<char> seen(nodes_.size(), 0);
  std::vector<std::uint32_t> queue;
  std::vector<std::string> out;
  for (const std::string& p : changed) {
    auto it = index_.find(p);
    if (it == index_.end()) {
      out.push_back(p);  // not a node: nothing in the project imports it, but it did change
      continue;
    }
    if (!seen[it->second]) {
      seen[it->second] = 1;
      queue.push_back(it->second);
    }
  }
  for (std::size_t head = 0; head < queue.size(); ++head) {
    for (std::uint32_t r : nodes_[queue[head]].rdeps) {
      if (!seen[r]) {
        seen[r] = 1;
        queue.push_back(r);
      }
    }
  }
  out.reserve(out.size() + queue.size());
  for (std::uint32_t id : queue) out.push_back(nodes_[id].path);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string ImportGraph::module_name(const std::string& path) const {
  auto it = index_.find(path);
  return it == index_.end() ? std::string() : nodes_[it->second].name;
}

std::string ImportGraph::resolve(const std::string& name) const {
  long id = lookup(name);
  return id < 0 ? std::string() : nodes_[static_cast<std::size_t>(id)].path;
}

std::size_t ImportGraph::edge_count() const {
  std::size_t n = 0;
  for (const Node& node : nodes_) n += node.deps.size();
  return n;
}

}  // namespace fastcollect
