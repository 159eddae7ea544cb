# The web page's files (src/server/ui/) become byte arrays in the library, regenerated
# whenever one of them changes.
file(GLOB AIRLOCK_UI_FILES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/src/server/ui/*)
set(AIRLOCK_UI_ASSETS_CC ${CMAKE_BINARY_DIR}/generated/ui_assets.cc)
add_custom_command(
  OUTPUT ${AIRLOCK_UI_ASSETS_CC}
  COMMAND ${CMAKE_COMMAND} -DUI_DIR=${CMAKE_SOURCE_DIR}/src/server/ui
          -DOUT=${AIRLOCK_UI_ASSETS_CC} -P ${CMAKE_SOURCE_DIR}/cmake/embed_ui.cmake
  DEPENDS ${AIRLOCK_UI_FILES} ${CMAKE_SOURCE_DIR}/cmake/embed_ui.cmake
  COMMENT "Embedding the web page")
