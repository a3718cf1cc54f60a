#include "engine/backends.h"

#include "engine/cpu/backend.h"
#include "engine/reference.h"
#ifdef LATENT_HAVE_CUDA
#include "engine/cuda/backend.h"
#endif

namespace latent::engine {

const char* backend_names() { return "cpu, reference, cuda"; }

uint64_t peak_device_bytes(const Backend& backend) {
#ifdef LATENT_HAVE_CUDA
    if (const auto* cuda = dynamic_cast<const CudaBackend*>(&backend))
        return cuda->peak_device_bytes();
#endif
    (void)backend;
    return 0;
}

DevicePageStats device_page_stats(const Backend& backend) {
#ifdef LATENT_HAVE_CUDA
    if (const auto* cuda = dynamic_cast<const CudaBackend*>(&backend))
        return cuda->device_page_stats();
#endif
    (void)backend;
    return {};
}

Expected<BackendChoice> make_backend(const BackendOptions& options) {
    BackendChoice choice;
    if (options.name == "reference") {
        choice.backend = std::make_unique<ReferenceBackend>();
        return choice;
    }
    if (options.name == "cuda") {
#ifdef LATENT_HAVE_CUDA
        auto cuda = CudaBackend::create();
        if (cuda) {
            choice.backend = std::move(*cuda);
            return choice;
        }
        choice.note = "no usable CUDA device (" + cuda.error().message + "); using the CPU";
#else
        choice.note = "no CUDA backend in this build; using the CPU";
#endif
        choice.backend = std::make_unique<CpuBackend>(options.threads);
        return choice;
    }
    if (options.name == "cpu") {
        choice.backend = std::make_unique<CpuBackend>(options.threads);
        return choice;
    }
    return Error{"unknown backend '" + options.name + "' (one of: " + backend_names() + ")"};
}

}  // namespace latent::engine
