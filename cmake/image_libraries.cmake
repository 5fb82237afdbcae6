# The image decoders: TurboJPEG, libpng, libtiff, libwebp and stb_image (for BMP), each through
# pkg-config where it is installed, else by header and library name (a GPU node with the
# libraries unpacked under a prefix given in CMAKE_PREFIX_PATH, and no pkg-config). Each becomes
# the target histotrain_<name>; histotrain_image_libraries links them all.
#
# On Debian: libturbojpeg0-dev libpng-dev libtiff-dev libwebp-dev libstb-dev (./run.sh installs them).
find_package(PkgConfig QUIET)

# histotrain_image_library(NAME PKG_MODULE HEADER LIBRARY [HEADER_SUFFIX])
function(histotrain_image_library name module header library)
  if(PKG_CONFIG_FOUND)
    pkg_check_modules(HISTOTRAIN_PC_${name} QUIET IMPORTED_TARGET ${module})
  endif()
  if(TARGET PkgConfig::HISTOTRAIN_PC_${name})
    add_library(histotrain_${name} ALIAS PkgConfig::HISTOTRAIN_PC_${name})
    return()
  endif()
  find_path(HISTOTRAIN_${name}_INCLUDE_DIR ${header} PATH_SUFFIXES ${ARGN})
  find_library(HISTOTRAIN_${name}_LIBRARY ${library})
  if(NOT HISTOTRAIN_${name}_INCLUDE_DIR OR NOT HISTOTRAIN_${name}_LIBRARY)
    message(FATAL_ERROR "${module} (${header}, lib${library}) was not found: on Debian, apt-get install the "
                        "package named at the top of cmake/image_libraries.cmake (./run.sh installs them)")
  endif()
  add_library(histotrain_${name} INTERFACE)
  target_include_directories(histotrain_${name} INTERFACE ${HISTOTRAIN_${name}_INCLUDE_DIR})
  target_link_libraries(histotrain_${name} INTERFACE ${HISTOTRAIN_${name}_LIBRARY})
endfunction()

histotrain_image_library(turbojpeg libturbojpeg turbojpeg.h turbojpeg)
histotrain_image_library(png libpng png.h png16)
histotrain_image_library(tiff libtiff-4 tiffio.h tiff)
histotrain_image_library(webp libwebp webp/decode.h webp)
histotrain_image_library(stb stb stb_image.h stb stb)

add_library(histotrain_image_libraries INTERFACE)
target_link_libraries(histotrain_image_libraries INTERFACE
  histotrain_turbojpeg histotrain_png histotrain_tiff histotrain_webp histotrain_stb)
