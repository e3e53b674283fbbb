// libFuzzer target: the tree-sitter scanner on arbitrary bytes (invalid UTF-8, deep nesting, long inputs),
// then the ModuleInfo encoding of what it found.
//
// Properties: scan_source never throws; decode_module_info(encode_module_info(info)) encodes to the same
// bytes (the cache round trip loses nothing it stores).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "scan/scanner.hpp"
#include "scan/serialize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static fastcollect::Scanner scanner(fastcollect::NameRules{});
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  const fastcollect::ModuleInfo info = scanner.scan_source(source, "fuzz.py");
  const std::string encoded = fastcollect::encode_module_info(info);
  const fastcollect::ModuleInfo back = fastcollect::decode_module_info(encoded, "fuzz.py");
  if (fastcollect::encode_module_info(back) != encoded) std::abort();
  return 0;
}
