// corio/detail/export.hpp - CORIO_API, the mark of what libcorio exports.
#pragma once

/// Marks a class, function or variable of libcorio that code outside the library may name: the
/// public API, and the detail:: functions and thread-locals that the headers' inline code and inline
/// asm reference. The library is built with hidden visibility (-fvisibility=hidden), so a shared
/// libcorio exports exactly these. On ELF (GCC, clang) it is visibility("default"), whatever the
/// build; static consumers need nothing. On Windows it is __declspec(dllexport) while the library
/// itself is compiled (CORIO_BUILDING, set by corio's meson.build), __declspec(dllimport) in a
/// consumer of corio.dll, and nothing when CORIO_STATIC is defined (set by corio_dep and corio.pc
/// of a static Windows build). Idea: the usual FOO_API / FOO_EXPORT macro of shared libraries
/// (GCC wiki, "Visibility").
#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(CORIO_STATIC)
#define CORIO_API
#elif defined(CORIO_BUILDING)
#define CORIO_API __declspec(dllexport)
#else
#define CORIO_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define CORIO_API __attribute__((visibility("default")))
#else
#define CORIO_API
#endif
