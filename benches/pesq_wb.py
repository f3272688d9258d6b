"""PESQ-WB (ITU-T P.862.2) of a degraded signal against its reference.

Usage: python3 pesq_wb.py <reference.f32> <degraded.f32>
Both are raw little-endian float32 at 48 kHz mono. The degraded signal is aligned to the
reference by cross-correlation, both are taken to 16 kHz, and the score is printed.
"""

import sys

import numpy as np
from pesq import pesq


def to_16k(x):
    """48 kHz to 16 kHz by cutting the spectrum (the whole signal at once)."""
    n = len(x) // 3
    return (np.fft.irfft(np.fft.rfft(x)[: n // 2 + 1], n) * n / len(x)).astype(np.float32)


def main(ref_path, deg_path):
    ref = np.fromfile(ref_path, dtype="<f4").astype(np.float64)
    deg = np.fromfile(deg_path, dtype="<f4").astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(ref) + len(deg))))
    corr = np.fft.irfft(np.fft.rfft(deg, size) * np.conj(np.fft.rfft(ref, size)), size)
    lag = int(np.argmax(corr))
    if lag > size // 2:
        lag -= size
    deg = deg[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag), deg])
    deg = np.concatenate([deg, np.zeros(max(0, len(ref) - len(deg)))])[: len(ref)]
    print(f"{pesq(16000, to_16k(ref), to_16k(deg), 'wb'):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
