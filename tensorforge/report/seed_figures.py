"""The NVIDIA whitepaper's published inference figures, as data: the reference column of ``tensorforge report``.

Source: ``/work/shared/seeds/001_8836a16ae2941c6b.txt`` — NVIDIA, "Technical overview: NVIDIA deep learning
platform — giant leaps in performance and efficiency for AI services" (TensorRT 3 era), section "Performance
Data Tables": CNNs on Tesla V100 (FP16/FP32 mixed precision) and Tesla P4 (INT8), and Jetson TX2 (Max-Q,
Max-P) and TX1 (FP16); Table 1 ("No accuracy loss at FP16, INT8 using TensorRT") for GoogLeNet top-1.
GPU runs are TensorRT ``giexec`` on random images (227x227 AlexNet, 224x224 the others). Power is total
board power on Tesla, AP+DRAM upstream power on Jetson. One line per (network, batch): images/s, watts,
images/s/W, latency ms ("-" where the table leaves the cell empty).

>>> reference("resnet50", 8)[0].throughput_sps
2493.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SOURCE", "Figure", "FIGURES", "ACCURACY_TABLE1", "reference", "model_key"]

SOURCE = "NVIDIA deep learning platform technical overview, Performance Data Tables (seeds/001_8836a16ae2941c6b.txt)"

_V100 = """
GoogLeNet    1    876   98.6   8.88    1.14
GoogLeNet    2   1235   65.4  18.88    1.62
GoogLeNet    4   2194   80.4  27.29    1.82
GoogLeNet    8   3776  112.2  33.65    2.12
GoogLeNet   64   8630  209.2  41.25    7.42
GoogLeNet  128   9404  225.6  41.68   13.61
ResNet-50    1    504   94.2   5.35    1.99
ResNet-50    2    797   66.8  11.93    2.51
ResNet-50    4   1450   83.7  17.32    2.76
ResNet-50    8   2493  113.6  21.95    3.21
ResNet-50   64   5572  196.4  28.37   11.49
ResNet-50  128   6024  210.1  28.67   21.25
VGG-19       1    464    144      3       2
VGG-19       2    718  138.7   5.18    2.79
VGG-19       4   1032  173.4   5.95    3.88
VGG-19       8   1334  203.4   6.56       6
VGG-19      64   1979    241   8.21   32.34
VGG-19     128   2030  238.4   8.52   63.04
"""
_P4 = """
GoogLeNet    1    837   42.4  19.74    1.19
GoogLeNet    2   1106   45.6  24.25    1.81
GoogLeNet    4   1489   49.1  30.33    2.69
GoogLeNet    8   1930  56.66  34.06    4.15
GoogLeNet   64   2531  64.25  39.39   25.29
GoogLeNet  128   2566   64.2  39.97   49.89
ResNet-50    1    600   32.9  18.24    1.67
ResNet-50    2    765   32.8  23.32    2.61
ResNet-50    4   1019     33  30.88    3.93
ResNet-50    8   1319   33.1  39.85    6.07
ResNet-50   64   1715   33.2  51.66   37.32
ResNet-50  128   1721   32.9  52.31   74.36
VGG-19       1    204   32.6      6     4.9
VGG-19       2    273   32.9    8.3    7.33
VGG-19       4    338   32.8   10.3   11.82
VGG-19       8    380  32.66  11.64   21.04
VGG-19      64    414   32.7  12.66  153.23
VGG-19     128    438   32.8  13.35     292
"""
_TX2_MAXQ = """
AlexNet      1    119    6.6     18     8.4
AlexNet      2    188    6.6   28.4    10.6
AlexNet      4    264    6.7   39.3    15.2
AlexNet      8    276    6.1   45.1      29
AlexNet     64    400    6.4   62.6     160
AlexNet    128    425    6.4   66.4   301.3
GoogLeNet    1    141    5.7   24.7     7.1
GoogLeNet    2    156    5.9   26.2    12.8
GoogLeNet    4    170    6.2   27.7    23.5
GoogLeNet    8    180    6.4   28.2    44.5
GoogLeNet   64    189    6.6   28.8   337.8
GoogLeNet  128    191    6.6   28.9   671.8
ResNet-50    1   64.3    5.4   11.9    15.6
ResNet-50    2   76.5    5.3   14.4    26.2
ResNet-50    4     81    5.4   15.1    49.4
ResNet-50    8   83.4    5.4   15.4    95.9
ResNet-50   64   89.4    5.5   16.2   715.5
ResNet-50  128   89.9    5.5   16.2  1424.3
VGG-19       1   18.8    7.2    2.6    53.1
VGG-19       2   21.5    7.2      3    93.1
VGG-19       4   22.6    7.3    3.1   176.8
VGG-19       8   22.8    7.2    3.2   351.3
VGG-19      64   22.9    7.2    3.2  2792.4
VGG-19     128   22.6    7.1    3.2  5660.6
"""
_TX2_MAXP = """
AlexNet      1    146    8.9   16.3    6.85
AlexNet      2    231    9.2   25.2    8.66
AlexNet      4    330    9.5   34.8   12.12
AlexNet      8    349    8.8   39.8    22.9
AlexNet     64    515    9.5   54.1  124.36
AlexNet    128    546    9.6   56.9  234.32
GoogLeNet    1    179    8.2   21.8     5.6
GoogLeNet    2    199    8.6   23.2    10.1
GoogLeNet    4    218      9   24.2    18.4
GoogLeNet    8    231    9.3   24.8    34.7
GoogLeNet   64    243    9.7   25.1   263.6
GoogLeNet  128    244    9.6   25.3   524.2
ResNet-50    1     82    7.4   11.1    12.2
ResNet-50    2     98    7.5     13    20.5
ResNet-50    4    104    7.6   13.6    38.6
ResNet-50    8    107      8   13.4    74.8
ResNet-50   64    115    7.9   14.6   558.9
ResNet-50  128    115    7.9   14.6  1113.2
VGG-19       1   23.7     10    2.3    42.2
VGG-19       2   26.8     10    2.6    74.7
VGG-19       4   28.2     10    2.7     142
VGG-19       8   28.3     10    2.8   282.7
VGG-19      64   28.7     10    2.8  2226.7
VGG-19     128   28.4     10    2.8    4514
"""
_TX1 = """
AlexNet      1     95    9.2   10.3    10.5
AlexNet      2    158   10.3   15.2    12.7
AlexNet      4    244   11.3   21.7    16.4
AlexNet      8    253   11.3   22.3    31.6
AlexNet     64    418   12.5   33.5   153.2
AlexNet    128    449   12.5      -   284.9
GoogLeNet    1    119   10.7   11.1     8.4
GoogLeNet    2    133   11.2     12      15
GoogLeNet    4    173   11.6   14.9    23.2
GoogLeNet    8    185   12.3   15.1    43.2
GoogLeNet   64    196   12.7   15.5     327
GoogLeNet  128    196   12.7   15.5   651.7
ResNet-50    1   60.8    9.5    6.4    16.4
ResNet-50    2   67.8    9.8    6.9    29.5
ResNet-50    4   80.5    9.7    8.3    49.7
ResNet-50    8   84.2   10.2    8.3      95
ResNet-50   64   91.2     10    9.1   701.7
ResNet-50  128   91.5   10.4    8.8  1399.3
VGG-19       1   13.3   11.3    1.2      75
VGG-19       2   16.4     12    1.4   122.2
VGG-19       4   19.2   12.2    1.6   207.8
VGG-19       8   19.5     12    1.6   410.6
VGG-19      64   20.3   12.2    1.7  3149.6
VGG-19     128   20.5   12.5    1.6  3187.3
"""

# device label -> (precision as the whitepaper ran it, table)
_TABLES = {"Tesla V100": ("fp16", _V100), "Tesla P4": ("int8", _P4), "Jetson TX2 Max-Q": ("fp16", _TX2_MAXQ),
           "Jetson TX2 Max-P": ("fp16", _TX2_MAXP), "Jetson TX1": ("fp16", _TX1)}

# Table 1 of the same document: GoogLeNet ImageNet top-1 (%), each reduced precision beside its own FP32 run
ACCURACY_TABLE1: tuple[dict[str, Any], ...] = (
    {"model": "googlenet", "precision": "fp16", "fp32_top1_pct": 72.23, "top1_pct": 72.25, "delta_pts": 0.02},
    {"model": "googlenet", "precision": "int8", "fp32_top1_pct": 73.11, "top1_pct": 72.54, "delta_pts": -0.57})


@dataclass(frozen=True)
class Figure:
    """One published row: ``network`` at ``batch`` on ``device``."""

    device: str
    precision: str
    network: str
    batch: int
    throughput_sps: float
    power_w: float | None
    perf_per_watt: float | None
    latency_ms: float | None


def model_key(name: str) -> str:
    """``"ResNet-50"``, ``"resnet50"``, ``"resnet50.tfe"`` -> ``"resnet50"`` (how names are matched)."""
    base = re.sub(r"\.(tfe|onnx)$", "", name.strip().lower())
    return re.sub(r"[^a-z0-9]", "", base)


def _num(text: str) -> float | None:
    return None if text == "-" else float(text)


def _parse() -> tuple[Figure, ...]:
    out = []
    for device, (precision, table) in _TABLES.items():
        for line in table.strip().splitlines():
            net, batch, sps, watts, per_w, lat = line.split()
            out.append(Figure(device, precision, net, int(batch), float(sps), _num(watts), _num(per_w), _num(lat)))
    return tuple(out)


FIGURES = _parse()


def reference(model: str, batch: int) -> list[Figure]:
    """The published rows for ``model`` (any spelling :func:`model_key` matches) at ``batch``; [] when none."""
    key = model_key(model)
    return [f for f in FIGURES if model_key(f.network) == key and f.batch == batch]
