#!/usr/bin/env python3
"""Train-step images/s of torchvision's ResNet-18 in Python PyTorch on one GPU: the same step as
histotrain's (bf16 autocast, channels-last, SGD Nesterov with weight decay, label smoothing 0.1),
on a fixed batch already on the GPU, eager and (where it works) torch.compile. histotrain's
bench/gpu_fast.sh prints it next to throughput_bench --graph, in the same run.

  torch_step_bench.py [--sizes 64,96,128,224] [--batch-size 256] [--steps 50] [--compile-sizes 96]
"""
import argparse, time

import torch
import torch.nn.functional as F
import torchvision


def step_rate(size, batch, steps, compiled):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, 3, size, size, device='cuda').contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 3, (batch,), device='cuda')

    def step():
        with torch.autocast('cuda', dtype=torch.bfloat16):
            loss = F.cross_entropy(net(x).float(), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    run = torch.compile(step) if compiled else step
    t = time.perf_counter()
    for _ in range(5):  # warm-up (and compilation)
        run()
    torch.cuda.synchronize()
    warm = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(steps):
        run()
    torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t), warm


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--sizes', default='64,96,128,224')
    ap.add_argument('--compile-sizes', default='96')
    ap.add_argument('--batch-size', type=int, default=256)
    ap.add_argument('--steps', type=int, default=50)
    a = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    print(f'# torch {torch.__version__}, {torch.cuda.get_device_name()}, batch {a.batch_size}, bf16 channels-last')
    for size in [int(s) for s in a.sizes.split(',') if s]:
        rate, _ = step_rate(size, a.batch_size, a.steps, False)
        print(f'python eager   {size:3d} px: {rate:8.0f} img/s', flush=True)
    for size in [int(s) for s in a.compile_sizes.split(',') if s]:
        try:
            rate, warm = step_rate(size, a.batch_size, a.steps, True)
            print(f'python compile {size:3d} px: {rate:8.0f} img/s (compilation and warm-up {warm:.0f} s)', flush=True)
        except Exception as e:  # torch.compile needs a working Triton/C++ toolchain
            print(f'python compile {size:3d} px: failed: {type(e).__name__}: {str(e)[:200]}', flush=True)


if __name__ == '__main__':
    main()
