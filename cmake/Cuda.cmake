# CUDA backend: detection of nvcc and the fatbin build step. Included once from the
# top-level CMakeLists.txt; probes/backends/cuda/CMakeLists.txt adds the backend to substrate_core
# when SUBSTRATE_CUDA_ENABLED is true. The toolkit is never mandatory (unless SUBSTRATE_CUDA=ON):
# without nvcc the backend is off and the rest of the build is unaffected.
#
# No enable_language(CUDA): nvcc only compiles kernels/cuda/kernels.cu into one fatbin (device
# code only), which is embedded into the binary and loaded through the driver API at run time,
# so no CUDA runtime, no libcuda link dependency and no CUDA host toolchain setup is needed.
#
# Variables set here:
#   SUBSTRATE_CUDA_ENABLED      TRUE when the backend is built
#   SUBSTRATE_CUDA_NVCC         path of nvcc
#   SUBSTRATE_CUDA_INCLUDE_DIR  directory of cuda.h (types only; nothing is linked)
#   SUBSTRATE_CUDA_SASS_ARCHS   e.g. 75;80;86;...;121 (SASS for each)
#   SUBSTRATE_CUDA_PTX_ARCH     newest arch, also embedded as PTX for forward compatibility
#   SUBSTRATE_CUDA_PTXAS        path of ptxas (checks the fallback PTX at its declared ISA)
#   SUBSTRATE_CUDA_FALLBACK_ARCH, SUBSTRATE_CUDA_FALLBACK_ISA
#                               the uncompressed fallback PTX: compute_75 at PTX ISA 8.0 (CUDA 12.0,
#                               so R525 and newer drivers JIT it)
# Functions:
#   substrate_cuda_fatbin(OUTPUT <file> SOURCE <kernels.cu> INCLUDE_DIR <dir>)
#   substrate_cuda_fallback_ptx(OUTPUT <file> SOURCE <kernels.cu> INCLUDE_DIR <dir>)

set(SUBSTRATE_CUDA AUTO CACHE STRING "CUDA backend: AUTO (on when nvcc is found), ON (required), OFF")
set_property(CACHE SUBSTRATE_CUDA PROPERTY STRINGS AUTO ON OFF)
set(SUBSTRATE_CUDA_ARCHS "" CACHE STRING
    "SASS architectures for the CUDA fatbin, e.g. 80;90 (empty: every sm_75+ target nvcc lists)")

set(SUBSTRATE_CUDA_ENABLED FALSE)

function(_substrate_cuda_off reason)
  if(SUBSTRATE_CUDA STREQUAL "ON")
    message(FATAL_ERROR "CUDA backend: SUBSTRATE_CUDA=ON but ${reason}")
  endif()
  message(STATUS "CUDA backend: off (${reason})")
endfunction()

if(SUBSTRATE_CUDA STREQUAL "OFF")
  message(STATUS "CUDA backend: off (SUBSTRATE_CUDA=OFF)")
  return()
endif()

# nvcc: an explicit CMAKE_CUDA_COMPILER wins, then PATH, CUDA_PATH/CUDA_HOME, /usr/local/cuda.
if(CMAKE_CUDA_COMPILER AND EXISTS "${CMAKE_CUDA_COMPILER}")
  set(SUBSTRATE_CUDA_NVCC "${CMAKE_CUDA_COMPILER}" CACHE FILEPATH "nvcc used for the CUDA kernels")
else()
  find_program(SUBSTRATE_CUDA_NVCC nvcc
    HINTS ENV CUDA_PATH ENV CUDA_HOME /usr/local/cuda
    PATH_SUFFIXES bin
    DOC "nvcc used for the CUDA kernels")
endif()
if(NOT SUBSTRATE_CUDA_NVCC)
  _substrate_cuda_off("nvcc not found")
  return()
endif()

get_filename_component(_substrate_cuda_bin "${SUBSTRATE_CUDA_NVCC}" DIRECTORY)
get_filename_component(_substrate_cuda_root "${_substrate_cuda_bin}" DIRECTORY)
find_path(SUBSTRATE_CUDA_INCLUDE_DIR cuda.h
  HINTS "${_substrate_cuda_root}/include" "${_substrate_cuda_root}/targets/x86_64-linux/include"
        "${_substrate_cuda_root}/targets/sbsa-linux/include"
  NO_DEFAULT_PATH)
if(NOT SUBSTRATE_CUDA_INCLUDE_DIR)
  _substrate_cuda_off("cuda.h not found next to ${SUBSTRATE_CUDA_NVCC}")
  return()
endif()

# Architectures: ask nvcc which real targets it has and keep the plain sm_NN ones from sm_75 up
# (no arch-specific "a"/"f" variants: their SASS runs only on that exact chip family).
execute_process(COMMAND "${SUBSTRATE_CUDA_NVCC}" --list-gpu-code
  OUTPUT_VARIABLE _substrate_cuda_codes RESULT_VARIABLE _substrate_cuda_rc ERROR_QUIET)
if(NOT _substrate_cuda_rc EQUAL 0)
  _substrate_cuda_off("${SUBSTRATE_CUDA_NVCC} --list-gpu-code failed")
  return()
endif()
execute_process(COMMAND "${SUBSTRATE_CUDA_NVCC}" --version OUTPUT_VARIABLE _substrate_cuda_version_text ERROR_QUIET)
string(REGEX MATCH "release ([0-9]+\\.[0-9]+)" _ "${_substrate_cuda_version_text}")
set(SUBSTRATE_CUDA_TOOLKIT_VERSION "${CMAKE_MATCH_1}")
# CUDA 12.0 is the oldest toolkit whose PTX can be declared at ISA 8.0 and whose nvcc knows every
# target used here (docs/cuda.md, "Driver matrix"); older toolkits are refused, never half-used.
if(NOT SUBSTRATE_CUDA_TOOLKIT_VERSION OR SUBSTRATE_CUDA_TOOLKIT_VERSION VERSION_LESS 12.0)
  _substrate_cuda_off("nvcc ${SUBSTRATE_CUDA_TOOLKIT_VERSION} at ${SUBSTRATE_CUDA_NVCC} is older than CUDA 12.0 (or its version could not be read)")
  return()
endif()
find_program(SUBSTRATE_CUDA_PTXAS ptxas HINTS "${_substrate_cuda_bin}" NO_DEFAULT_PATH DOC "ptxas next to nvcc")
if(NOT SUBSTRATE_CUDA_PTXAS)
  _substrate_cuda_off("ptxas not found next to ${SUBSTRATE_CUDA_NVCC}")
  return()
endif()
set(SUBSTRATE_CUDA_FALLBACK_ARCH 75)
set(SUBSTRATE_CUDA_FALLBACK_ISA 8.0)

set(_substrate_cuda_available "")
string(REGEX MATCHALL "sm_[0-9]+" _substrate_cuda_sm "${_substrate_cuda_codes}")
foreach(code IN LISTS _substrate_cuda_sm)
  string(REGEX REPLACE "^sm_" "" num "${code}")
  # MATCHALL also matches the prefix of sm_90a: keep only codes listed on their own.
  if(num GREATER_EQUAL 75 AND _substrate_cuda_codes MATCHES "(^|\n)sm_${num}(\n|$)")
    list(APPEND _substrate_cuda_available ${num})
  endif()
endforeach()
list(REMOVE_DUPLICATES _substrate_cuda_available)
list(SORT _substrate_cuda_available COMPARE NATURAL)

if(SUBSTRATE_CUDA_ARCHS)
  foreach(num IN LISTS SUBSTRATE_CUDA_ARCHS)
    if(NOT num IN_LIST _substrate_cuda_available)
      message(FATAL_ERROR "CUDA backend: SUBSTRATE_CUDA_ARCHS has ${num}, but nvcc offers only ${_substrate_cuda_available}")
    endif()
  endforeach()
  set(SUBSTRATE_CUDA_SASS_ARCHS ${SUBSTRATE_CUDA_ARCHS})
else()
  set(SUBSTRATE_CUDA_SASS_ARCHS ${_substrate_cuda_available})
endif()
list(SORT SUBSTRATE_CUDA_SASS_ARCHS COMPARE NATURAL)
if(NOT SUBSTRATE_CUDA_SASS_ARCHS)
  _substrate_cuda_off("nvcc lists no sm_75+ targets")
  return()
endif()
list(GET SUBSTRATE_CUDA_SASS_ARCHS -1 SUBSTRATE_CUDA_PTX_ARCH)

set(SUBSTRATE_CUDA_ENABLED TRUE)
list(JOIN SUBSTRATE_CUDA_SASS_ARCHS " " _substrate_cuda_arch_text)
message(STATUS "CUDA backend: on (nvcc ${SUBSTRATE_CUDA_TOOLKIT_VERSION} at ${SUBSTRATE_CUDA_NVCC}; "
               "SASS for sm ${_substrate_cuda_arch_text}; PTX compute_${SUBSTRATE_CUDA_PTX_ARCH})")

# Compiles one .cu file into a fatbin: SASS for every arch in SUBSTRATE_CUDA_SASS_ARCHS plus PTX
# for the newest. nvcc writes a depfile so edits to included headers rebuild it; --threads 0
# compiles the architectures in parallel.
function(substrate_cuda_fatbin)
  cmake_parse_arguments(ARG "" "OUTPUT;SOURCE;INCLUDE_DIR" "" ${ARGN})
  get_filename_component(abs "${ARG_SOURCE}" ABSOLUTE)
  set(gencode "")
  foreach(num IN LISTS SUBSTRATE_CUDA_SASS_ARCHS)
    list(APPEND gencode -gencode arch=compute_${num},code=sm_${num})
  endforeach()
  list(APPEND gencode -gencode arch=compute_${SUBSTRATE_CUDA_PTX_ARCH},code=compute_${SUBSTRATE_CUDA_PTX_ARCH})
  set(warn "")
  if(SUBSTRATE_WERROR)
    set(warn -Werror all-warnings)
  endif()
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND "${SUBSTRATE_CUDA_NVCC}" -fatbin -std=c++20 -O3 --threads 0
            -ccbin "${CMAKE_CXX_COMPILER}" ${warn}
            -I "${ARG_INCLUDE_DIR}" ${gencode}
            -MD -MF ${ARG_OUTPUT}.d -o ${ARG_OUTPUT} ${abs}
    DEPENDS ${abs}
    DEPFILE ${ARG_OUTPUT}.d
    COMMENT "nvcc: kernels/cuda fatbin (sm ${_substrate_cuda_arch_text}, PTX ${SUBSTRATE_CUDA_PTX_ARCH})"
    VERBATIM)
endfunction()

# Compiles one .cu file into uncompressed PTX for compute_${SUBSTRATE_CUDA_FALLBACK_ARCH} and
# declares it at PTX ISA ${SUBSTRATE_CUDA_FALLBACK_ISA}: nvcc writes the ISA of its own release
# (9.0 for CUDA 13), which drivers before R580 refuse; cmake/CudaPtxIsa.cmake rewrites the
# .version line, and ptxas then assembles the result for sm_${SUBSTRATE_CUDA_FALLBACK_ARCH}, which
# fails the build if the code uses anything that ISA lacks (ptxas checks each instruction against
# the declared .version). The file is the image the CUDA backend loads when a driver refuses the
# fatbin (docs/cuda.md).
function(substrate_cuda_fallback_ptx)
  cmake_parse_arguments(ARG "" "OUTPUT;SOURCE;INCLUDE_DIR" "" ${ARGN})
  get_filename_component(abs "${ARG_SOURCE}" ABSOLUTE)
  set(warn "")
  if(SUBSTRATE_WERROR)
    set(warn -Werror all-warnings)
  endif()
  add_custom_command(
    OUTPUT ${ARG_OUTPUT}
    COMMAND "${SUBSTRATE_CUDA_NVCC}" -ptx -std=c++20 -O3 -ccbin "${CMAKE_CXX_COMPILER}" ${warn}
            -I "${ARG_INCLUDE_DIR}" -arch=compute_${SUBSTRATE_CUDA_FALLBACK_ARCH}
            -MD -MF ${ARG_OUTPUT}.d -MT ${ARG_OUTPUT} -o ${ARG_OUTPUT}.native ${abs}
    COMMAND ${CMAKE_COMMAND} -DIN=${ARG_OUTPUT}.native -DOUT=${ARG_OUTPUT}.unchecked
            -DISA=${SUBSTRATE_CUDA_FALLBACK_ISA} -P ${CMAKE_SOURCE_DIR}/cmake/CudaPtxIsa.cmake
    COMMAND "${SUBSTRATE_CUDA_PTXAS}" -arch=sm_${SUBSTRATE_CUDA_FALLBACK_ARCH} ${ARG_OUTPUT}.unchecked
            -o ${ARG_OUTPUT}.cubin
    COMMAND ${CMAKE_COMMAND} -E rename ${ARG_OUTPUT}.unchecked ${ARG_OUTPUT}
    DEPENDS ${abs} ${CMAKE_SOURCE_DIR}/cmake/CudaPtxIsa.cmake
    DEPFILE ${ARG_OUTPUT}.d
    COMMENT "nvcc + ptxas: kernels/cuda PTX compute_${SUBSTRATE_CUDA_FALLBACK_ARCH} at ISA ${SUBSTRATE_CUDA_FALLBACK_ISA}"
    VERBATIM)
endfunction()
