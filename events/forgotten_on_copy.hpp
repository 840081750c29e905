// A pointer into its owner's own containers (a cache of the entry found last), which a copy
// of the owner must not share: the copy's pointer would reach into the original's containers.
// A copy or a move, and an assignment, start with none; the owner's other members copy as they
// are, so the owner keeps its defaulted copies and moves.
#pragma once

namespace omniroute {

template <typename T>
struct ForgottenOnCopy {
  T* ptr = nullptr;
  ForgottenOnCopy() = default;
  ForgottenOnCopy(const ForgottenOnCopy&) {}
  ForgottenOnCopy& operator=(const ForgottenOnCopy&) {
    ptr = nullptr;
    return *this;
  }
};

}  // namespace omniroute
