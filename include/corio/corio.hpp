// corio/corio.hpp - the umbrella header: everything a program on corio needs.
#pragma once

#include "corio/errors.hpp"
#include "corio/net/endpoint.hpp"
#include "corio/net/tcp_listener.hpp"
#include "corio/net/tcp_stream.hpp"
#include "corio/runtime.hpp"
#include "corio/spawn.hpp"
#include "corio/task.hpp"
#include "corio/time.hpp"
#include "corio/when_all.hpp"
#include "corio/yield.hpp"
