# Install rules for the deployment files. Include from the top-level CMakeLists.txt after
# include(GNUInstallDirs):   include(deploy/install.cmake)
#
# With -DCMAKE_INSTALL_PREFIX=/usr (the packaging default) this installs
#   /usr/lib/systemd/system/substrated.service
#   /etc/substrated/substrated.yaml                       (from config/substrated.yaml, when present)
#   /usr/share/substrated/prometheus/substrated-rules.yml
#   /usr/share/substrated/alertmanager/{substrated-inhibit,alertmanager.example}.yml
#   /usr/share/substrated/grafana/substrated-dashboard.json
#   /usr/share/substrated/kubernetes/*                    (manifests and the NPD plugin config)
#   /usr/libexec/substrated/substrate_torch_worker.py     (the reference external worker, docs/external-workers.md)
# With another prefix the unit's ExecStart= and --config paths are rewritten to that prefix, so
# `cmake --install build --prefix /opt/substrated` gives a consistent tree; DESTDIR= stages it. The
# prefix is the one in force when installing (--prefix, or CPack's /usr for deploy/package.cmake).
# As GNUInstallDirs does, prefix /usr puts the configuration in /etc and /opt/X in /etc/opt/X; pass
# -DCMAKE_INSTALL_SYSCONFDIR=/etc to keep /etc/substrated, which is also what
# ConfigurationDirectory=substrated in the unit creates.

set(SUBSTRATE_SYSTEMD_UNITDIR "lib/systemd/system"
    CACHE STRING "Directory for the systemd unit; a relative path is taken under the install prefix")
# Build trees configured before the default became relative cached "<prefix>/lib/systemd/system".
if(SUBSTRATE_SYSTEMD_UNITDIR STREQUAL "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
  set_property(CACHE SUBSTRATE_SYSTEMD_UNITDIR PROPERTY VALUE "lib/systemd/system")
endif()
option(SUBSTRATE_INSTALL_CONFIG "Install the default configuration into SYSCONFDIR/substrated" ON)

set(_substrate_deploy "${CMAKE_CURRENT_LIST_DIR}")
set(_substrate_root "${CMAKE_CURRENT_LIST_DIR}/..")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_substrate_deploy}/systemd/substrated.service")

# The unit and the configuration are placed by deploy/install_paths.cmake at install time, from the
# prefix in force then (`cmake --install --prefix`, CPack's /usr), not the one configured: the unit
# in the repository names /usr/bin/substrated and /etc/substrated/substrated.yaml, and both are
# rewritten to the install's bindir and sysconfdir (no change for prefix /usr).
set(_substrate_config "")
if(SUBSTRATE_INSTALL_CONFIG AND EXISTS "${_substrate_root}/config/substrated.yaml")
  set(_substrate_config "${_substrate_root}/config/substrated.yaml")
endif()
install(CODE "
  set(SUBSTRATE_UNIT_SOURCE \"${_substrate_deploy}/systemd/substrated.service\")
  set(SUBSTRATE_UNIT_STAGING \"${CMAKE_CURRENT_BINARY_DIR}/deploy/install\")
  set(SUBSTRATE_UNITDIR \"${SUBSTRATE_SYSTEMD_UNITDIR}\")
  set(SUBSTRATE_BINDIR \"${CMAKE_INSTALL_BINDIR}\")
  set(SUBSTRATE_SYSCONFDIR \"${CMAKE_INSTALL_SYSCONFDIR}\")
  set(SUBSTRATE_CONFIG_SOURCE \"${_substrate_config}\")
" COMPONENT deploy)
install(SCRIPT "${_substrate_deploy}/install_paths.cmake" COMPONENT deploy)

install(FILES "${_substrate_deploy}/prometheus/substrated-rules.yml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/prometheus" COMPONENT deploy)
install(FILES "${_substrate_deploy}/grafana/substrated-dashboard.json"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/grafana" COMPONENT deploy)
install(FILES "${_substrate_deploy}/alertmanager/substrated-inhibit.yml"
              "${_substrate_deploy}/alertmanager/alertmanager.example.yml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/alertmanager" COMPONENT deploy)
install(DIRECTORY "${_substrate_deploy}/kubernetes/"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/kubernetes" COMPONENT deploy)
# The reference external worker (PyTorch): run by the daemon only where the config names it.
install(PROGRAMS "${_substrate_root}/probes/backends/torch/substrate_torch_worker.py"
        DESTINATION "${CMAKE_INSTALL_LIBEXECDIR}/substrated" COMPONENT deploy)
install(FILES "${_substrate_root}/docs/operations.md"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT deploy)
