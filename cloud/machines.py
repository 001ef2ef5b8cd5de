"""Machine types and their accelerators, for Vertex AI replicas and Dataflow workers:
which GPUs each family takes and how many, so a request that Vertex would refuse fails
here, before submission, with the choices spelled out."""

import dataclasses
import re
import typing

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
)

_N1_GPUS = {
    "NVIDIA_TESLA_T4": (1, 2, 4),
    "NVIDIA_TESLA_V100": (1, 2, 4, 8),
    "NVIDIA_TESLA_P100": (1, 2, 4),
    "NVIDIA_TESLA_P4": (1, 2, 4),
}
_G2_L4_COUNT = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}


def _fixed(accelerator, count):
    return {accelerator: (count,)}


# Machine families -> {accelerator type: allowed counts}. The accelerator-optimised
# families come with a fixed number of GPUs built in; N1 takes a choice of attached
# GPUs; the other general-purpose and compute families take none. First match wins.
MACHINE_FAMILIES = (
    (r"a2-highgpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_TESLA_A100", int(m["n"]))),
    (r"a2-megagpu-16g", lambda m: _fixed("NVIDIA_TESLA_A100", 16)),
    (r"a2-ultragpu-(?P<n>1|2|4|8)g", lambda m: _fixed("NVIDIA_A100_80GB", int(m["n"]))),
    (r"a3-highgpu-8g", lambda m: _fixed("NVIDIA_H100_80GB", 8)),
    (r"a3-megagpu-8g", lambda m: _fixed("NVIDIA_H100_MEGA_80GB", 8)),
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
    """Validates a machine/accelerator combination and fills in the accelerator count.

    Args:
      machine_type: e.g. "n1-standard-8", "a2-highgpu-4g".
      accelerator_type: e.g. "NVIDIA_TESLA_T4", or None/"" for none.
      accelerator_count: None or 0 chooses the machine's count (accelerator-optimised
        families) or 1 (N1).

    Returns:
      A `MachineSpec`.

    Raises:
      SpecError: for an unknown accelerator type, an accelerator on a CPU-only (or
        unknown) machine family, a count the machine cannot take, or a count without a
        type.
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
            # a2/a3/g2 machines always carry their GPUs; the API wants them named.
            (accelerator, (fixed,)), = allowed.items()
            raise SpecError(
                f"Expected --accelerator_type={accelerator} --accelerator_count={fixed} with "
                f"--machine_type={machine_type}. Received: no accelerator."
            )
        return MachineSpec(machine_type)
    if accelerator_type not in GPU_ACCELERATORS:
        raise SpecError(
            f"Expected --accelerator_type among {list(GPU_ACCELERATORS)}. Received: {accelerator_type!r}."
        )
    if allowed is None:
        raise SpecError(
            f"Expected a machine family that takes GPUs (a2-highgpu-Ng, a2-ultragpu-Ng, "
            f"a3-highgpu-8g, g2-standard-N, n1-*) for --accelerator_type={accelerator_type}. "
            f"Received: --machine_type={machine_type!r}, a family this tool does not know."
        )
    if not allowed:
        raise SpecError(
            f"Expected no accelerator on the CPU-only machine type {machine_type}. Received: "
            f"--accelerator_type={accelerator_type}. Use an n1-*, g2-standard-*, a2-* or a3-* "
            "machine for GPUs."
        )
    if accelerator_type not in allowed:
        raise SpecError(
            f"Expected an accelerator that {machine_type} can take: {_choices(allowed)}. "
            f"Received: --accelerator_type={accelerator_type}."
        )
    counts = allowed[accelerator_type]
    if not count:
        count = counts[0]
    if count not in counts:
        raise SpecError(
            f"Expected --accelerator_count in {list(counts)} for {accelerator_type} on "
            f"{machine_type}. Received: {count}."
        )
    return MachineSpec(machine_type, accelerator_type, count)


def _choices(allowed):
    if not allowed:
        return []
    return [f"{name} x{'/'.join(map(str, counts))}" for name, counts in allowed.items()]
