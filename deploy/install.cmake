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
# With another prefix the unit's ExecStart= and --config paths are rewritten to that prefix, so
# `cmake --install build --prefix /opt/substrated` gives a consistent tree; DESTDIR= stages it.
# GNUInstallDirs puts SYSCONFDIR at /etc/opt/... for /opt prefixes; pass -DCMAKE_INSTALL_SYSCONFDIR=/etc
# to keep /etc/substrated, which is also what ConfigurationDirectory=substrated in the unit creates.

set(SUBSTRATE_SYSTEMD_UNITDIR "${CMAKE_INSTALL_PREFIX}/lib/systemd/system"
    CACHE PATH "Directory for the systemd unit (e.g. /usr/lib/systemd/system)")
option(SUBSTRATE_INSTALL_CONFIG "Install the default configuration into SYSCONFDIR/substrated" ON)

set(_substrate_deploy "${CMAKE_CURRENT_LIST_DIR}")
set(_substrate_root "${CMAKE_CURRENT_LIST_DIR}/..")

# The unit in the repository names /usr/bin/substrated and /etc/substrated/substrated.yaml;
# adapt both to the chosen prefix (no change for --prefix /usr).
file(READ "${_substrate_deploy}/systemd/substrated.service" _substrate_unit)
string(REPLACE "/usr/bin/substrated" "${CMAKE_INSTALL_FULL_BINDIR}/substrated" _substrate_unit "${_substrate_unit}")
string(REPLACE "/etc/substrated/substrated.yaml" "${CMAKE_INSTALL_FULL_SYSCONFDIR}/substrated/substrated.yaml"
       _substrate_unit "${_substrate_unit}")
file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/deploy/substrated.service" "${_substrate_unit}")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_substrate_deploy}/systemd/substrated.service")

install(FILES "${CMAKE_CURRENT_BINARY_DIR}/deploy/substrated.service"
        DESTINATION "${SUBSTRATE_SYSTEMD_UNITDIR}" COMPONENT deploy)

if(SUBSTRATE_INSTALL_CONFIG AND EXISTS "${_substrate_root}/config/substrated.yaml")
  install(FILES "${_substrate_root}/config/substrated.yaml"
          DESTINATION "${CMAKE_INSTALL_FULL_SYSCONFDIR}/substrated" COMPONENT deploy)
endif()

install(FILES "${_substrate_deploy}/prometheus/substrated-rules.yml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/prometheus" COMPONENT deploy)
install(FILES "${_substrate_deploy}/grafana/substrated-dashboard.json"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/grafana" COMPONENT deploy)
install(FILES "${_substrate_deploy}/alertmanager/substrated-inhibit.yml"
              "${_substrate_deploy}/alertmanager/alertmanager.example.yml"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/alertmanager" COMPONENT deploy)
install(DIRECTORY "${_substrate_deploy}/kubernetes/"
        DESTINATION "${CMAKE_INSTALL_DATADIR}/substrated/kubernetes" COMPONENT deploy)
install(FILES "${_substrate_root}/docs/operations.md"
        DESTINATION "${CMAKE_INSTALL_DOCDIR}" COMPONENT deploy)
