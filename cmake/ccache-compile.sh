#!/bin/sh
# The compiler launcher: ccache, with one fix. CMake rebuilds a precompiled header with
# `-include cmake_pch.hxx`, and GCC then reads the previous cmake_pch.hxx.gch while it makes the
# new one: ccache's key would hold the old file's bytes and miss, and then every object compiled
# against the new header would miss too (a whole rebuild after any change of flags). Removing the
# old header first makes each rebuild look like the first build, which ccache has seen.
#   ccache-compile.sh CCACHE COMPILER ARGS...
ccache=$1
shift
previous=""
for arg in "$@"; do
  if [ "$previous" = "-o" ]; then
    case "$arg" in *.gch) rm -f -- "$arg" ;; esac
  fi
  previous=$arg
done
exec "$ccache" "$@"
