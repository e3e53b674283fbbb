// libFuzzer target: the ModuleInfo decoder (a discovery-cache row) on arbitrary bytes.
//
// Properties: decode_module_info either throws DecodeError or returns a value whose encoding decodes to
// the same encoding again (no out-of-bounds read: ASan checks every access).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "scan/serialize.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  fastcollect::ModuleInfo info;
  try {
    info = fastcollect::decode_module_info(bytes, "row.py");
  } catch (const fastcollect::DecodeError&) {
    return 0;
  }
  const std::string encoded = fastcollect::encode_module_info(info);
  if (fastcollect::encode_module_info(fastcollect::decode_module_info(encoded, "row.py")) != encoded) std::abort();
  return 0;
}
