#pragma once

#include <signal.h>

namespace keel::net {

// For server programs (keeld, keel-psp-sim). Blocks SIGTERM and SIGINT in the calling thread and
// every thread it starts later, so that only the main loop's sigtimedwait() on the returned set
// sees them; ignores SIGPIPE (a peer that went away is an error code, not a signal). Call it
// first thing in main(), before any thread exists.
sigset_t block_stop_signals();

}  // namespace keel::net
