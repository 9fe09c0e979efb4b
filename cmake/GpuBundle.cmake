# The GPU bundle (tests/gpu/bundle.sh): substrated with its embedded fatbin, the test binary with
# the hidden [.gpu] group, the runner and the deploy unit, relocatable, as a directory and a
# tarball, so a GPU host proves the fatbin that ships without building anything:
#
#   cmake --build build --target gpu-bundle
#   -> build/substrated-gpu-bundle/   and   build/substrated-gpu-bundle-<version>-<arch>.tar.gz
#
# Part of the default build when the CUDA backend is on and patchelf is found, so CI tests the
# runner against the stand-ins (ctest gpu-runner). Include after add_subdirectory(tests).
if(NOT SUBSTRATE_CUDA_ENABLED OR NOT SUBSTRATE_TESTS)
  return()
endif()
find_program(SUBSTRATE_PATCHELF patchelf)
if(NOT SUBSTRATE_PATCHELF)
  message(STATUS "GPU bundle: off (patchelf not found; scripts/install-deps.sh installs it)")
  return()
endif()

set(SUBSTRATE_GPU_BUNDLE_DIR ${CMAKE_BINARY_DIR}/substrated-gpu-bundle)
set(SUBSTRATE_GPU_BUNDLE_TARBALL
    ${CMAKE_BINARY_DIR}/substrated-gpu-bundle-${PROJECT_VERSION}-${CMAKE_SYSTEM_PROCESSOR}.tar.gz)
set(_substrate_bundle_targets "")
foreach(num IN LISTS SUBSTRATE_CUDA_SASS_ARCHS)
  string(APPEND _substrate_bundle_targets "sm_${num} ")
endforeach()
string(APPEND _substrate_bundle_targets "compute_${SUBSTRATE_CUDA_PTX_ARCH}")
add_custom_command(
  OUTPUT ${SUBSTRATE_GPU_BUNDLE_TARBALL}
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gpu/bundle.sh ${SUBSTRATE_GPU_BUNDLE_DIR} ${SUBSTRATE_GPU_BUNDLE_TARBALL}
          $<TARGET_FILE:substrated> $<TARGET_FILE:substrate_tests> ${CMAKE_SOURCE_DIR}/tests/gpu/run.sh
          ${CMAKE_SOURCE_DIR}/deploy/systemd/substrated.service ${PROJECT_VERSION} "${_substrate_bundle_targets}"
          ${CMAKE_SOURCE_DIR}
  DEPENDS substrated substrate_tests ${CMAKE_SOURCE_DIR}/tests/gpu/bundle.sh ${CMAKE_SOURCE_DIR}/tests/gpu/run.sh
          ${CMAKE_SOURCE_DIR}/deploy/systemd/substrated.service
  COMMENT "GPU bundle"
  VERBATIM)
add_custom_target(gpu-bundle ALL DEPENDS ${SUBSTRATE_GPU_BUNDLE_TARBALL})

# The runner's own logic against the stand-ins (fake nvidia-smi, libcuda and NVML stand-ins).
add_test(NAME gpu-runner COMMAND bash ${CMAKE_SOURCE_DIR}/tests/gpu/runner_test.sh)
set_tests_properties(gpu-runner PROPERTIES TIMEOUT 300 ENVIRONMENT
  "SUBSTRATE_GPU_BUNDLE=${SUBSTRATE_GPU_BUNDLE_DIR};SUBSTRATE_GPU_BUNDLE_TARBALL=${SUBSTRATE_GPU_BUNDLE_TARBALL};SUBSTRATE_FAKE_LIBCUDA=$<TARGET_FILE:substrate_fake_libcuda>;SUBSTRATE_NVML_STANDIN_DIR=$<TARGET_FILE_DIR:nvml_standin_current>;SUBSTRATE_SANITIZED=$<BOOL:${SUBSTRATE_SANITIZE}>")
