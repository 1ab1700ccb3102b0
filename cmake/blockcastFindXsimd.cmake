# Finds xsimd (>= 8) for blockcast's SIMD kernels.
# Debian 12's xsimd 8.1 export lists "xtl" as a link library without looking for it, so
# linking the xsimd target fails with "cannot find -lxtl" unless xtl is installed. blockcast
# does not use xtl: when xtl is absent, the name gets an empty interface target.
include(CMakeFindDependencyMacro)
find_dependency(xsimd 8)
if(NOT TARGET xtl)
  find_package(xtl QUIET)
  if(NOT TARGET xtl)
    add_library(xtl INTERFACE IMPORTED)
  endif()
endif()
