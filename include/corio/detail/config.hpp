// corio/detail/config.hpp - the first include of every corio header: the language check and the
// export macro.
#pragma once

// corio needs C++20 and its coroutines. A translation unit built with an older standard stops here,
// with this error first, before <coroutine> or std::atomic_ref report it their own way. MSVC keeps
// __cplusplus at 199711L unless /Zc:__cplusplus is given: _MSVC_LANG holds its standard.
#if defined(_MSVC_LANG) && _MSVC_LANG > __cplusplus
#if _MSVC_LANG < 202002L || !defined(__cpp_impl_coroutine)
#error "corio needs C++20 coroutines: -std=c++20"
#endif
#elif __cplusplus < 202002L || !defined(__cpp_impl_coroutine)
#error "corio needs C++20 coroutines: -std=c++20"
#endif

#include "corio/detail/export.hpp"

// CORIO_TLS_ASM: 1 where the headers read corio's two thread-locals (the frame cache, the current
// stop state: corio/detail/frame_allocator.hpp, stop_state.hpp) through inline asm, 0 where they
// call exported functions of the library instead. The asm is the initial-exec sequence
// (`sym@gottpoff(%rip)` plus %fs): position-independent, so right in PIE executables and -fPIC
// code too, but it asks for the variable's offset in the static TLS block, which a library loaded
// with dlopen may not get ("cannot allocate memory in static TLS block"). A shared corio
// (CORIO_SHARED, defined by corio_dep and corio.pc of a shared build) therefore keeps its
// thread-locals in the dynamic TLS model and is reached through the out-of-line functions: one call
// more per frame allocation. Its thread-locals keep their assembler names and are exported, so code
// built without CORIO_SHARED (the asm) still links and runs against it when the library is loaded
// at program start.
#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CORIO_SHARED)
#define CORIO_TLS_ASM 1
#else
#define CORIO_TLS_ASM 0
#endif
