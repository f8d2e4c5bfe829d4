# Fuzz targets (tests/fuzz/<target>.cpp, each defining LLVMFuzzerTestOneInput). Normal builds
# make one replay executable per target, which `make test` runs over the seed corpora (and the
# crash reproducers kept there); PORTICO_FUZZ=ON (clang) makes the libFuzzer binaries instead.
set(PORTICO_FUZZ_TARGETS
    http1_request_head http1_chunked http1_response_head path_normalize
    jwt jwk config_loader http2_server trace_context path_template grpc_response
    transcode_request)

# http2_server drives the real Http2Connection with fake Session and Worker classes: its own copy
# of http2_connection.cpp is compiled against the fake headers, which must shadow src/proxy/.
function(portico_fuzz_target_setup target name)
  target_compile_options(${target} PRIVATE ${PORTICO_WARNINGS})
  target_link_libraries(${target} PRIVATE portico_lib)
  if(name STREQUAL "http2_server")
    target_sources(${target} PRIVATE ${CMAKE_SOURCE_DIR}/src/proxy/http2_connection.cpp)
    target_include_directories(${target} BEFORE PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz/http2_fake)
  endif()
endfunction()

if(PORTICO_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PORTICO_FUZZ needs clang (e.g. CXX=clang++-14), not ${CMAKE_CXX_COMPILER_ID}")
  endif()
  add_custom_target(portico_fuzzers)
  foreach(name ${PORTICO_FUZZ_TARGETS})
    add_executable(portico_fuzz_${name} tests/fuzz/${name}.cpp)
    portico_fuzz_target_setup(portico_fuzz_${name} ${name})
    target_link_options(portico_fuzz_${name} PRIVATE -fsanitize=fuzzer)
    add_dependencies(portico_fuzzers portico_fuzz_${name})
  endforeach()
else()
  add_library(portico_fuzz_replay_main OBJECT tests/fuzz/replay_main.cpp)
  target_compile_options(portico_fuzz_replay_main PRIVATE ${PORTICO_WARNINGS})
  foreach(name ${PORTICO_FUZZ_TARGETS})
    add_executable(portico_fuzz_replay_${name} tests/fuzz/${name}.cpp
                   $<TARGET_OBJECTS:portico_fuzz_replay_main>)
    portico_fuzz_target_setup(portico_fuzz_replay_${name} ${name})
  endforeach()
endif()
