# The Debian package (CPack, DEB generator). Include from the top-level CMakeLists.txt after
# deploy/install.cmake:   include(deploy/package.cmake)
#
#   cmake --build build --target package        # or: cd build && cpack -G DEB
#   -> build/substrated_<version>-<release>_<arch>.deb
#
# The package holds everything `cmake --install` installs, placed for prefix /usr whatever prefix
# the build was configured with (deploy/install_paths.cmake resolves the unit and /etc at install
# time), plus what Debian wants of a package and a plain install does not need:
#   /usr/share/man/man8/substrated.8.gz                   deploy/debian/substrated.8
#   /usr/share/bash-completion/completions/substrated     deploy/debian/substrated.bash-completion
#   /usr/share/doc/substrated/{copyright,changelog.Debian.gz}
# and the maintainer scripts in deploy/debian (postinst enables and starts the service with
# deb-systemd-helper/deb-systemd-invoke, prerm stops it on removal, postrm purge deletes
# /etc/substrated and /var/lib/substrated), with /etc/substrated/substrated.yaml a conffile.
# Checked by tests/deploy/package_test.sh (lintian, install, upgrade, purge).
#
# Override at package time without reconfiguring, e.g. a later Debian revision:
#   cpack -G DEB --config build/CPackConfig.cmake -D CPACK_DEBIAN_PACKAGE_RELEASE=2

set(_substrate_debian "${CMAKE_CURRENT_LIST_DIR}/debian")
set(_substrate_pkg "${CMAKE_CURRENT_BINARY_DIR}/deploy/package")

set(SUBSTRATE_PACKAGE_MAINTAINER "substrated maintainers <substrated@users.noreply.github.com>"
    CACHE STRING "Maintainer field of the Debian package")
set(SUBSTRATE_PACKAGE_RELEASE "1" CACHE STRING "Debian revision of the package")

set(CPACK_GENERATOR "DEB")
set(CPACK_PACKAGE_NAME "substrated")
set(CPACK_PACKAGE_VENDOR "substrated")
set(CPACK_PACKAGE_VERSION "${PROJECT_VERSION}")
set(CPACK_PACKAGE_CONTACT "${SUBSTRATE_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "daemon that checks GPUs and accelerators compute correctly")
# CPack writes the summary as the synopsis and this as the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "substrated runs small reference kernels (matrix multiplication, attention,
reductions, memory patterns) on every compute device it finds through Vulkan,
CUDA or ROCm, compares the results with a CPU reference computed from the same
seed, and exports a verdict per device to Prometheus on port 19400. It runs as
a hardened systemd service within a small duty-cycle budget, and as a
command-line tool (substrated probe) for one-off checks and fault drills.")
set(CPACK_PACKAGING_INSTALL_PREFIX "/usr")
# DESTDIR staging with prefix /usr: the install rules see the real prefix, so /etc lands in /etc.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX "/usr")
set(CPACK_STRIP_FILES ON)
set(CPACK_DEBIAN_FILE_NAME "DEB-DEFAULT")
set(CPACK_DEBIAN_PACKAGE_NAME "substrated")
set(CPACK_DEBIAN_PACKAGE_RELEASE "${SUBSTRATE_PACKAGE_RELEASE}")
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${SUBSTRATE_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION "admin")
set(CPACK_DEBIAN_PACKAGE_PRIORITY "optional")
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/substrated/substrated")
# Library dependencies from dpkg-shlibdeps; the Vulkan loader named as well, since the daemon is
# useless without it even if a future build loads it with dlopen. init-system-helpers provides
# deb-systemd-helper/-invoke for the maintainer scripts.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libvulkan1, init-system-helpers (>= 1.54~)")
# python3, numpy and torch run the reference external worker (docs/external-workers.md), which
# only a config that names it starts.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "python3, python3-numpy")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "mesa-vulkan-drivers, prometheus, python3-torch")
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    "${_substrate_debian}/postinst" "${_substrate_debian}/prerm" "${_substrate_debian}/postrm"
    "${_substrate_debian}/conffiles")
set(CPACK_DEBIAN_COMPRESSION_TYPE "xz")
set(CPACK_SOURCE_GENERATOR "")

# Files Debian wants in the package: generated here, compressed with gzip -9n (no timestamp in
# the header, so two builds give the same bytes).
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
             "${_substrate_debian}/substrated.8" "${_substrate_debian}/changelog.Debian"
             "${_substrate_debian}/copyright")
string(TIMESTAMP SUBSTRATE_CHANGELOG_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
set(CPACK_DEBIAN_PACKAGE_VERSION "${PROJECT_VERSION}")
set(SUBSTRATE_VERSION "${PROJECT_VERSION}")
configure_file("${_substrate_debian}/substrated.8" "${_substrate_pkg}/substrated.8" @ONLY)
configure_file("${_substrate_debian}/changelog.Debian" "${_substrate_pkg}/changelog.Debian" @ONLY)
configure_file("${_substrate_debian}/copyright" "${_substrate_pkg}/copyright" @ONLY)
unset(CPACK_DEBIAN_PACKAGE_VERSION)  # CPack derives it from CPACK_PACKAGE_VERSION (and -D overrides)
foreach(_f substrated.8 changelog.Debian)
  execute_process(COMMAND gzip -9nc "${_substrate_pkg}/${_f}" OUTPUT_FILE "${_substrate_pkg}/${_f}.gz"
                  RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "gzip ${_f} failed")
  endif()
endforeach()

# Component "package": only in the package and in a full `cmake --install` (harmless there).
install(FILES "${_substrate_pkg}/substrated.8.gz" DESTINATION "${CMAKE_INSTALL_MANDIR}/man8" COMPONENT package)
install(FILES "${_substrate_debian}/substrated.bash-completion"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/bash-completion/completions" RENAME substrated COMPONENT package)
install(FILES "${_substrate_pkg}/copyright" "${_substrate_pkg}/changelog.Debian.gz" "${_substrate_root}/README.md"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT package)

install(FILES "${_substrate_debian}/lintian-overrides" DESTINATION "${CMAKE_INSTALL_DATADIR}/lintian/overrides"
        RENAME substrated COMPONENT package)

include(CPack)
