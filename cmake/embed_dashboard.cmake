# Writes OUT, a C++ source defining portico::admin::dashboardHtml() as the text of IN (the
# dashboard page), so the binary serves it with no file beside it.
file(READ "${IN}" PAGE)
string(FIND "${PAGE}" ")PORTICO_HTML" CLASH)
if(NOT CLASH EQUAL -1)
  message(FATAL_ERROR "${IN} contains the raw string delimiter )PORTICO_HTML")
endif()
file(WRITE "${OUT}" "// Generated from src/admin/dashboard.html by cmake/embed_dashboard.cmake.
#include \"admin/admin_api.hpp\"

namespace portico::admin {

std::string_view dashboardHtml() {
  static constexpr std::string_view kPage = R\"PORTICO_HTML(${PAGE})PORTICO_HTML\";
  return kPage;
}

}  // namespace portico::admin
")
