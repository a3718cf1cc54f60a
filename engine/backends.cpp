#include "engine/backends.h"

#include "engine/cpu/backend.h"
#include "engine/reference.h"

namespace latent::engine {

const char* backend_names() { return "cpu, reference, cuda"; }

Expected<BackendChoice> make_backend(const BackendOptions& options) {
    BackendChoice choice;
    if (options.name == "reference") {
        choice.backend = std::make_unique<ReferenceBackend>();
        return choice;
    }
    if (options.name == "cpu" || options.name == "cuda") {
        choice.backend = std::make_unique<CpuBackend>(options.threads);
        if (options.name == "cuda") choice.note = "no CUDA backend in this build; using the CPU";
        return choice;
    }
    return Error{"unknown backend '" + options.name + "' (one of: " + backend_names() + ")"};
}

}  // namespace latent::engine
