// Writes the ModuleInfo encoding of each Python file given to OUT_DIR/<basename>.bin: the seed corpus of
// fuzz_module_info (tests/fuzz/corpus/module_info), made from the scanner's seeds.
//   make_seeds OUT_DIR FILE...
#include <fstream>
#include <iostream>
#include <string>

#include "scan/scanner.hpp"
#include "scan/serialize.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: make_seeds OUT_DIR FILE...\n";
    return 2;
  }
  fastcollect::Scanner scanner(fastcollect::NameRules{});
  for (int i = 2; i < argc; ++i) {
    const std::string path = argv[i];
    const std::string name = path.substr(path.find_last_of('/') + 1);
    std::ofstream out(std::string(argv[1]) + "/" + name + ".bin", std::ios::binary);
    out << fastcollect::encode_module_info(scanner.scan_file(path));
  }
  return 0;
}
