// CudaBackend: the forward pass on an NVIDIA GPU (ENGINE_SPEC §3, the same math as
// reference.h), behind the common Backend interface. A plain C++ header: no CUDA types, so
// latent_engine's .cpp files can create one (engine/backends.cpp) and the tests can include
// it whether or not a device exists.
// - Weights: uploaded once per Model in their file format (bytes per weight as in the file).
//   Small batches (decode) run fused dequant-dot kernels that read the quant blocks
//   directly; larger batches dequantize one matrix at a time to an F32 scratch and run
//   cuBLAS (TF32 tensor cores with FP32 accumulation by default, FP32 with precise = true).
// - MLA in the absorbed form over a device copy of the latent cache, one pass with an online
//   softmax, split over the sequence for decode and merged.
// - MoE: routing on the device; the batch's (token, expert) pairs grouped by expert on the
//   device, each expert's weights read once per tile of up to 8 of its tokens. No host
//   synchronisation inside a forward pass except the final copies back.
// - Cache: each SeqCache gets a device mirror of its rows ([layer][position][c_kv | k_pe],
//   F32). The host SeqCache stays the truth and is kept in step: new rows are copied back
//   after every pass, so the prefix cache, session truncation and the disk tier keep
//   working; a mirror whose page ids or page fingerprints no longer match the host's is
//   re-filled (see backend.cu, sync_sequence) from the device pages when they hold the
//   page (the prefix cache's device tier: every full page a pass wrote or uploaded is
//   kept, by LatentCache page id and generation), from the host otherwise.
// - A one-token decode step runs as a CUDA graph captured once per sequence (the step's
//   position is read from device memory, decode attention always uses 32 splits); larger
//   batches launch their kernels directly. If capture fails, every step runs directly.
//
// Thread safety: one forward() / sample_last() at a time per CudaBackend.
#pragma once

#include <memory>
#include <string>

#include "engine/backend.h"
#include "engine/expected.h"

namespace latent::engine {

struct CudaOptions {
    int device = 0;        // CUDA device ordinal
    bool precise = false;  // true: cuBLAS in FP32 (no TF32) — the tests' tight mode
    bool graphs = true;    // one-token decode steps as CUDA graphs (captured once per sequence)
    // Device memory for copies of full cache pages (the prefix cache's device tier): 0 is
    // a quarter of the memory free after the weights are uploaded; kNoDevicePages none.
    uint64_t device_page_bytes = 0;
    static constexpr uint64_t kNoDevicePages = ~uint64_t{0};
};

class CudaBackend final : public Backend {
public:
    // A backend on options.device, or an error naming why none is usable (no driver, no
    // device, cuBLAS failed to start).
    static Expected<std::unique_ptr<CudaBackend>> create(const CudaOptions& options = {});
    ~CudaBackend() override;

    std::string name() const override { return "cuda"; }
    Status forward(const Model& model, SeqCache& seq, std::span<const int32_t> tokens,
                   LogitsMode mode, std::vector<float>& logits) override;

    // Picks a token from the last row of logits of the previous forward() on the device,
    // so a decode loop need not look at the logits: temperature 0 is the argmax (ties to
    // the lower id); otherwise softmax(logits / temperature), the top-p nucleus (the same
    // set as Sampler's) and one draw at u in [0, 1), walking the nucleus in id order.
    // No repetition penalty, top-k or min-p: Session and the server keep host sampling
    // (engine/sampler.h) for those.
    Expected<int32_t> sample_last(float temperature, float top_p, double u);

    // The device, e.g. "NVIDIA H200 (sm_90, 139 GiB)".
    std::string device_name() const;
    // Most device memory this backend has held at once, bytes.
    uint64_t peak_device_bytes() const;
    // Empty while decode steps run as CUDA graphs; else why capture failed (they run directly).
    std::string graph_note() const;
    DevicePageStats device_page_stats() const;

private:
    struct Impl;
    explicit CudaBackend(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace latent::engine
