// Precompiled header: the heavy, stable includes every translation unit may use.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
