// make_backend: the one place that turns a backend name (a CLI flag, an editor setting)
// into a Backend. "cpu" is the fast CPU pass, "reference" the plain float one, "cuda"
// the GPU (falls back to "cpu" with a message in `note` when no device is usable).
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/expected.h"

namespace latent::engine {

struct BackendOptions {
    std::string name = "cpu";  // cpu | reference | cuda
    int threads = 0;           // 0: all cores the process may use
};

struct BackendChoice {
    std::unique_ptr<Backend> backend;
    std::string note;  // why the choice differs from what was asked (empty if it doesn't)
};

Expected<BackendChoice> make_backend(const BackendOptions& options);

// Names accepted by make_backend, for --help texts and error messages.
const char* backend_names();

// The most device memory `backend` has held (bytes); 0 for a backend that runs on the CPU.
uint64_t peak_device_bytes(const Backend& backend);

// The device tier of the prefix cache (CUDA); zeros for a backend without one. Call it on
// the thread that runs the backend's passes.
DevicePageStats device_page_stats(const Backend& backend);

}  // namespace latent::engine
