# Run at install time by deploy/install.cmake (install(SCRIPT)), after it has set SUBSTRATE_UNIT_SOURCE,
# SUBSTRATE_UNIT_STAGING, SUBSTRATE_UNITDIR, SUBSTRATE_BINDIR, SUBSTRATE_SYSCONFDIR and
# SUBSTRATE_CONFIG_SOURCE (empty: no config). Resolves them against the CMAKE_INSTALL_PREFIX of this
# install, so `cmake --install --prefix P` and CPack (prefix /usr, DESTDIR staging) place the unit and
# the configuration where the unit's ExecStart= says. file(INSTALL) prepends $DESTDIR itself.
set(_prefix "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/+$" "" _prefix "${_prefix}")

# Relative directories are under the prefix; sysconfdir follows GNUInstallDirs' special cases.
macro(_substrate_under_prefix out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}")
  else()
    set(${out} "${_prefix}/${dir}")
  endif()
endmacro()
_substrate_under_prefix(_unitdir "${SUBSTRATE_UNITDIR}")
_substrate_under_prefix(_bindir "${SUBSTRATE_BINDIR}")
if(IS_ABSOLUTE "${SUBSTRATE_SYSCONFDIR}")
  set(_etc "${SUBSTRATE_SYSCONFDIR}")
elseif(SUBSTRATE_SYSCONFDIR STREQUAL "etc" AND (_prefix STREQUAL "" OR _prefix STREQUAL "/usr"))
  set(_etc "/etc")
elseif(SUBSTRATE_SYSCONFDIR STREQUAL "etc" AND _prefix MATCHES "^/opt/")
  set(_etc "/etc${_prefix}")
else()
  set(_etc "${_prefix}/${SUBSTRATE_SYSCONFDIR}")
endif()

file(READ "${SUBSTRATE_UNIT_SOURCE}" _unit)
string(REPLACE "/usr/bin/substrated" "${_bindir}/substrated" _unit "${_unit}")
string(REPLACE "/etc/substrated/substrated.yaml" "${_etc}/substrated/substrated.yaml" _unit "${_unit}")
file(WRITE "${SUBSTRATE_UNIT_STAGING}/substrated.service" "${_unit}")
file(INSTALL DESTINATION "${_unitdir}" TYPE FILE
     PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
     FILES "${SUBSTRATE_UNIT_STAGING}/substrated.service")
if(SUBSTRATE_CONFIG_SOURCE)
  file(INSTALL DESTINATION "${_etc}/substrated" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${SUBSTRATE_CONFIG_SOURCE}")
endif()
