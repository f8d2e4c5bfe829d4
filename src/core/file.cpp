#include "core/file.hpp"

#include <cerrno>
#include <cstdio>
#include <memory>

namespace portico {

int readWholeFile(const std::string& path, std::string& out) {
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> file(std::fopen(path.c_str(), "rb"));
  if (!file) return errno;
  out.clear();
  char buffer[16 * 1024];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file.get())) > 0) out.append(buffer, n);
  // fopen() accepts a directory; the read then fails with EISDIR.
  if (std::ferror(file.get())) return errno != 0 ? errno : EIO;
  return 0;
}

}  // namespace portico
