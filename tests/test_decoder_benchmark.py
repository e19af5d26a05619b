"""``benchmarks/decoder.py`` reports paired speed ratios: the median over rounds of (CNN seconds /
HiT seconds) within each round, not the ratio of two medians taken over the whole run, and its
target lines keep the form ``benchmarks/summary.py`` reads."""

from __future__ import annotations

import pytest

from support import benchmark_script


def _row(model: str, times: list[float], size: int = 256) -> dict:
    return dict(model=model, mode="fp32", size=size, params_m=1.0, gflops=1.0, seconds=sorted(times)[len(times) // 2],
                gflops_per_s=1.0, peak_fraction=0.5, peak_mem_mb=None, weights="random", times=times)


def test_speed_is_the_median_of_per_round_ratios():
    bench = benchmark_script("decoder")
    # the machine slows down in round 2 for both decoders alike: per round the HiT decoder is 10x faster
    cnn = _row(bench.CNN_NAME, [1.0, 3.0, 1.1])
    hit = _row("hit-8m-f16", [0.1, 0.3, 0.11])
    assert bench.paired(cnn, hit) == pytest.approx((10.0, 10.0, 10.0))
    # the ratio of the two medians would pair round 3's CNN with round 3's HiT only by chance
    cnn2, hit2 = _row(bench.CNN_NAME, [1.0, 2.0, 3.0]), _row("hit-8m-f16", [0.3, 0.1, 0.2])
    assert cnn2["seconds"] / hit2["seconds"] == pytest.approx(10.0)
    assert bench.paired(cnn2, hit2) == pytest.approx((15.0, 10 / 3, 20.0))
    with pytest.raises(ValueError):  # rows of different round counts are not pairs
        bench.paired(cnn, _row("hit-8m-f16", [0.1, 0.2]))

    res = {"rows": [cnn2, hit2], "bf16_units": True}
    table = "\n".join(bench.markdown(res))
    assert "| 15.00× [3.33, 20.00] |" in table
    lines = bench.targets(res)
    assert lines[0].startswith("- hit-8m-f16 vs taming CNN f16, fp32 eager, 256²: 15.0× (target >= 10×; rounds 3.3× to 20.0×)")
    assert lines[0].endswith(": met") and "(target" in lines[0]  # what benchmarks/summary.py picks up


def test_the_environment_line_names_allocator_settings(monkeypatch):
    bench = benchmark_script("decoder")
    for name in bench.ALLOCATOR_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert bench.allocator_settings() == "defaults"
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "33554432")
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "1")
    assert bench.allocator_settings() == "MALLOC_MMAP_THRESHOLD_=33554432, THP_MEM_ALLOC_ENABLE=1"


def test_hit_m_and_its_speed_variants_are_held_to_the_f8_target():
    bench = benchmark_script("decoder")
    cnn = _row("cnn-f8", [0.30, 0.33, 0.31])
    hit_m, narrow = _row("hit-m", [0.15, 0.15, 0.155]), _row("hit-m-16-16", [0.09, 0.11, 0.10])
    lines = bench.targets({"rows": [cnn, hit_m, narrow, _row("hit-l", [0.1, 0.1, 0.1])], "bf16_units": True})
    f8 = [ln for ln in lines if "vs its CNN arm" in ln]
    assert [ln.split(" vs ")[0] for ln in f8] == ["- hit-m", "- hit-m-16-16"]  # not hit-l: no target of its own
    assert f8[0].endswith("2.0× (target >= 3×; rounds 2.0× to 2.2×): NOT met")
    assert f8[1].endswith("3.1× (target >= 3×; rounds 3.0× to 3.3×): met")


def test_hit_8m_f16_and_its_slim_preset_are_held_to_the_f16_target():
    bench = benchmark_script("decoder")
    cnn = _row(bench.CNN_NAME, [3.0, 3.3, 3.1])
    hit, slim = _row("hit-8m-f16", [0.36, 0.36, 0.37]), _row("hit-8m-f16-slim", [0.29, 0.30, 0.31])
    lines = bench.targets({"rows": [cnn, hit, slim, _row("hit-1m-f16", [0.1, 0.1, 0.1])], "bf16_units": True})
    f16 = [ln for ln in lines if "vs taming CNN f16" in ln]
    assert [ln.split(" vs ")[0] for ln in f16] == ["- hit-8m-f16", "- hit-8m-f16-slim"]  # not hit-1m-f16
    assert f16[0].endswith("8.4× (target >= 10×; rounds 8.3× to 9.2×): NOT met")
    assert f16[1].endswith("10.3× (target >= 10×; rounds 10.0× to 11.0×): met")
