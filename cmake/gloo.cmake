# Gloo: the collective backend of data parallelism and of pipeline stages on CPUs (and of two ranks
# sharing one GPU). LibTorch's c10d compiles Gloo in (USE_C10D_GLOO on its target), but using it
# needs Gloo's own headers: Debian ships them as libgloo-dev; a PyTorch wheel ships none.
#
# The decision is made here, once, and reaches the compiler as HISTOTRAIN_WITH_GLOO on the one file
# that uses it: a header test inside the source (__has_include) is invisible to ccache's direct
# mode, which then kept handing back an object built before the headers were installed.
#
#   -DHISTOTRAIN_GLOO=AUTO  (default) required on a CPU LibTorch, used where found on a CUDA one
#   -DHISTOTRAIN_GLOO=ON    required
#   -DHISTOTRAIN_GLOO=OFF   left out: no data parallelism or pipeline stages across ranks on CPUs
#   -DGLOO_INCLUDE_DIR=DIR  a folder holding gloo/algorithm.h (e.g. a Gloo checkout on a GPU node)
set(HISTOTRAIN_GLOO AUTO CACHE STRING "Use Gloo (AUTO: required without CUDA, optional with it; ON; OFF)")
set_property(CACHE HISTOTRAIN_GLOO PROPERTY STRINGS AUTO ON OFF)

set(_histotrain_gloo_source ${PROJECT_SOURCE_DIR}/src/distributed/communicator.cpp)
set(HISTOTRAIN_WITH_GLOO OFF)
if(NOT HISTOTRAIN_GLOO STREQUAL "OFF")
  get_target_property(_torch_definitions torch_cpu INTERFACE_COMPILE_DEFINITIONS)
  find_path(GLOO_INCLUDE_DIR gloo/algorithm.h)
  set(_gloo_missing "")
  if(NOT "USE_C10D_GLOO" IN_LIST _torch_definitions)
    set(_gloo_missing "this LibTorch (${Torch_VERSION}) was built without c10d's Gloo backend")
  elseif(NOT GLOO_INCLUDE_DIR OR NOT EXISTS "${GLOO_INCLUDE_DIR}/gloo/algorithm.h")
    set(_gloo_missing "Gloo's headers (gloo/algorithm.h) were not found (GLOO_INCLUDE_DIR=${GLOO_INCLUDE_DIR}): \
on Debian, apt-get install libgloo-dev (./run.sh installs it); elsewhere pass -DGLOO_INCLUDE_DIR=<folder holding gloo/>")
  endif()
  if(_gloo_missing STREQUAL "")
    set(HISTOTRAIN_WITH_GLOO ON)
  elseif(HISTOTRAIN_GLOO STREQUAL "ON" OR NOT C10_CUDA_LIBRARY)
    message(FATAL_ERROR "Gloo: ${_gloo_missing}.\nWithout Gloo a CPU build has no data parallelism and no "
                        "pipeline stages on ranks. To build without them anyway, configure with -DHISTOTRAIN_GLOO=OFF.")
  else()
    message(WARNING "Gloo: ${_gloo_missing}. This CUDA build has NCCL only: two ranks cannot share one GPU, and "
                    "CPU ranks cannot train together.")
  endif()
endif()

if(HISTOTRAIN_WITH_GLOO)
  message(STATUS "Gloo: yes (${GLOO_INCLUDE_DIR})")
  target_include_directories(histotrain_distributed PRIVATE ${GLOO_INCLUDE_DIR})
  set_property(SOURCE ${_histotrain_gloo_source} APPEND PROPERTY COMPILE_DEFINITIONS HISTOTRAIN_WITH_GLOO=1)
else()
  message(STATUS "Gloo: no (HISTOTRAIN_GLOO=${HISTOTRAIN_GLOO})")
endif()
