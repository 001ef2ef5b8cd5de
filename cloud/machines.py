"""Machine types and their accelerators, for Vertex AI replicas and Dataflow workers:
which GPUs each family takes and how many. Input that cannot be right anywhere fails
here, before submission; a combination the table does not list is logged with the
choices spelled out and left to the API, which knows machines newer than this table."""

import dataclasses
import re
import typing

from absl import logging

from cloud.arguments import SpecError

GPU_ACCELERATORS = (
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
    "NVIDIA_H100_80GB",
    "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB",
    "NVIDIA_B200",
    "NVIDIA_GB200",
    "NVIDIA_RTX_PRO_6000",
)

_N1_GPUS = {
    "NVIDIA_TESLA_T4": (1, 2, 4),
    "NVIDIA_TESLA_V100": (1, 2, 4, 8),
    "NVIDIA_TESLA_P100": (1, 2, 4),
    "NVIDIA_TESLA_P4": (1, 2, 4),
}
_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}
_G4_COUNT = {48: 1, 96: 2, 192: 4, 384: 8}


def _fixed(accelerator, count):
    return {accelerator: (count,)}


# Machine families -> {accelerator type: allowed counts}. The accelerator-optimised
# families come with a fixed number of GPUs built in; N1 takes a choice of attached
# GPUs; the other general-purpose and compute families take none. First match wins.
# The table advises (see check_machine): what it does not list goes to the API as asked.
MACHINE_FAMILIES = (
    (r"a2-highgpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_TESLA_A100", int(m["n"]))),
    (r"a2-megagpu-16g", lambda m: _fixed("NVIDIA_TESLA_A100", 16)),
    (r"a2-ultragpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_A100_80GB", int(m["n"]))),
    (r"a3-highgpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_H100_80GB", int(m["n"]))),
    (r"a3-megagpu-8g", lambda m: _fixed("NVIDIA_H100_MEGA_80GB", 8)),
    (r"a3-ultragpu-8g", lambda m: _fixed("NVIDIA_H200_141GB", 8)),
    (r"a4-highgpu-8g", lambda m: _fixed("NVIDIA_B200", 8)),
    (r"a4x-highgpu-4g", lambda m: _fixed("NVIDIA_GB200", 4)),
    (r"g4-standard-(?P<n>48|96|192|384)", lambda m: _fixed("NVIDIA_RTX_PRO_6000", _G4_COUNT[int(m["n"])])),
    (r"g2-standard-(?P<n>4|8|12|16|24|32|48|96)", lambda m: _fixed("NVIDIA_L4", _G2_L4_COUNT[int(m["n"])])),
    (r"n1-(standard|highmem|highcpu)-\d+", lambda m: dict(_N1_GPUS)),
    (r"(e2|n2|n2d|n4|c2|c2d|c3|c3d|c4|m1|m2|m3|t2d)-[a-z]+-\d+", lambda m: {}),
)


@dataclasses.dataclass(frozen=True)
class MachineSpec:
    machine_type: str
    accelerator_type: typing.Optional[str] = None
    accelerator_count: int = 0

    def to_json(self):
        spec = {"machineType": self.machine_type}
        if self.accelerator_type:
            spec["acceleratorType"] = self.accelerator_type
            spec["acceleratorCount"] = self.accelerator_count
        return spec


def allowed_accelerators(machine_type):
    """{accelerator type: allowed counts} of a machine type, or None when the family is
    not in `MACHINE_FAMILIES`."""
    for pattern, rule in MACHINE_FAMILIES:
        match = re.fullmatch(pattern, machine_type)
        if match:
            return rule(match)
    return None


def check_machine(machine_type, accelerator_type=None, accelerator_count=None):
    """Checks a machine/accelerator combination and fills in the accelerator count.

    `MACHINE_FAMILIES` only advises: Vertex adds machines faster than any table here,
    so a combination it does not list is logged as a warning and left to the API to
    judge. Input that cannot be right anywhere (no machine type, a negative count, a
    count without a type, an accelerator name the API does not have) is an error.

    Args:
      machine_type: e.g. "n1-standard-8", "a3-ultragpu-8g".
      accelerator_type: e.g. "NVIDIA_H200_141GB", or None/"" for none.
      accelerator_count: None or 0 chooses the machine's count (accelerator-optimised
        families), else 1.

    Returns:
      A `MachineSpec`.

    Raises:
      SpecError: for the input errors above.
    """
    if not machine_type or not isinstance(machine_type, str):
        raise SpecError(f"Expected --machine_type such as n1-standard-8. Received: {machine_type!r}.")
    count = accelerator_count or 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise SpecError(f"Expected --accelerator_count to be an integer >= 0. Received: {accelerator_count!r}.")
    allowed = allowed_accelerators(machine_type)
    if not accelerator_type:
        if count:
            raise SpecError(
                f"Expected --accelerator_type with --accelerator_count={count}. Received: no "
                f"accelerator type. Choose one of {_choices(allowed) or list(GPU_ACCELERATORS)}."
            )
        if allowed and all(len(counts) == 1 for counts in allowed.values()):
            # a2/a3/a4/g2 machines always carry their GPUs; the API wants them named.
            (accelerator, (fixed,)), = allowed.items()
            _advise(
                f"Expected --accelerator_type={accelerator} --accelerator_count={fixed} with "
                f"--machine_type={machine_type}. Received: no accelerator."
            )
        return MachineSpec(machine_type)
    if accelerator_type not in GPU_ACCELERATORS:
        raise SpecError(
            f"Expected --accelerator_type among {list(GPU_ACCELERATORS)}. Received: {accelerator_type!r}."
        )
    counts = (allowed or {}).get(accelerator_type)
    if allowed is None:
        _advise(
            f"Expected a machine family that takes GPUs (a2-*, a3-*, a4-*, a4x-*, g2-*, g4-*, n1-*) "
            f"for --accelerator_type={accelerator_type}. Received: --machine_type={machine_type!r}, "
            "a family this tool does not know."
        )
    elif not allowed:
        _advise(
            f"Expected no accelerator on the CPU-only machine type {machine_type}. Received: "
            f"--accelerator_type={accelerator_type}. Use an n1-*, g2-*, g4-*, a2-*, a3-* or a4-* "
            "machine for GPUs."
        )
    elif counts is None:
        _advise(
            f"Expected an accelerator that {machine_type} can take: {_choices(allowed)}. "
            f"Received: --accelerator_type={accelerator_type}."
        )
    if not count:
        count = counts[0] if counts else 1
    if counts and count not in counts:
        _advise(
            f"Expected --accelerator_count in {list(counts)} for {accelerator_type} on "
            f"{machine_type}. Received: {count}."
        )
    return MachineSpec(machine_type, accelerator_type, count)


def _advise(message):
    logging.warning("%s Sending it anyway: the Vertex AI API has the last word.", message)


def _choices(allowed):
    if not allowed:
        return []
    return [f"{name} x{'/'.join(map(str, counts))}" for name, counts in allowed.items()]
