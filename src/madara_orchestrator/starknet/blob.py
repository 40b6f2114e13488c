"""Felts ↔ EIP-4844 blobs (SPEC §5.11, §6.3, §6.4).

A blob holds 4096 evaluations y_i = P(g^bitrev12(i)) of the polynomial whose coefficients are the felts
(lowest degree first), each as 32 big-endian bytes. The original evaluates naively (O(n²)); here a
radix-2 decimation-in-frequency NTT produces exactly that bit-reversed order in O(n log n), and the
matching decimation-in-time inverse gives the coefficients back.
"""

from __future__ import annotations

from collections.abc import Sequence

from madara_orchestrator.domain.chain import BYTES_PER_BLOB, BYTES_PER_FIELD_ELEMENT, FELTS_PER_BLOB
from madara_orchestrator.domain.errors import InvalidInput
from madara_orchestrator.starknet.felt import BLS_MODULUS

GENERATOR = 39033254847818212395286706435128746857159659164139250548781411570340225835782
"""Primitive 4096-th root of unity of the BLS12-381 scalar field (EIP-4844)."""


class MaxBlobsLimitExceeded(InvalidInput):
    """More data than the allowed number of blobs; never truncated silently."""

    def __init__(self, n_blobs: int, max_blobs: int, n_felts: int) -> None:
        self.n_blobs = n_blobs
        self.max_blobs = max_blobs
        self.n_felts = n_felts
        super().__init__(
            f"{n_felts} felts need {n_blobs} blobs but at most {max_blobs} are allowed "
            f"({max_blobs * FELTS_PER_BLOB} felts); split the data over more batches"
        )


class InvalidBlob(InvalidInput):
    """Bytes that are not a blob: wrong length or an evaluation outside the BLS12-381 field."""


# --------------------------------------------------------------------------------------------------
# Precomputed constants (module-level, computed once at import; a few milliseconds)


def _powers(base: int, count: int) -> list[int]:
    out = [1] * count
    for k in range(1, count):
        out[k] = out[k - 1] * base % BLS_MODULUS
    return out


def _stage_twiddles(powers: list[int]) -> dict[int, list[int]]:
    """For every butterfly half-size m: [w_2m^j for j < m] with w_2m = g^(n/2m)."""
    half = FELTS_PER_BLOB // 2
    out: dict[int, list[int]] = {}
    m = 1
    while m <= half:
        out[m] = powers[:: half // m][:m]
        m *= 2
    return out


_HALF = FELTS_PER_BLOB // 2
_FORWARD_TWIDDLES = _stage_twiddles(_powers(GENERATOR, _HALF))
_INVERSE_TWIDDLES = _stage_twiddles(_powers(pow(GENERATOR, -1, BLS_MODULUS), _HALF))
_N_INVERSE = pow(FELTS_PER_BLOB, -1, BLS_MODULUS)


def bit_reverse(i: int, bits: int = 12) -> int:
    return int(format(i, f"0{bits}b")[::-1], 2)


def evaluation_point(i: int) -> int:
    """x_i = g^bitrev12(i): the point at which blob position i is an evaluation."""
    return pow(GENERATOR, bit_reverse(i), BLS_MODULUS)


# --------------------------------------------------------------------------------------------------
# The transforms. Sums are left unreduced between stages (values grow by at most one bit a stage);
# every product is reduced, and one final pass brings everything into [0, p).


def ntt_bit_reversed(coefficients: Sequence[int]) -> list[int]:
    """4096 coefficients (natural order) → evaluations at g^bitrev12(i), as SPEC §6.3 defines them."""
    n = FELTS_PER_BLOB
    if len(coefficients) != n:
        raise InvalidInput(f"the blob transform takes exactly {n} values, got {len(coefficients)}")
    p = BLS_MODULUS
    a = list(coefficients)
    m = n // 2
    while m >= 1:
        step = 2 * m
        tw = _FORWARD_TWIDDLES[m]
        if m >= n // step:  # few long blocks: contiguous slices, one twiddle per position
            out: list[int] = []
            for k in range(0, n, step):
                lo = a[k : k + m]
                hi = a[k + m : k + step]
                out += [x + y for x, y in zip(lo, hi, strict=True)]
                out += [(x - y) * w % p for x, y, w in zip(lo, hi, tw, strict=True)]
            a = out
        else:  # many short blocks: strided slices that share one twiddle
            for j in range(m):
                lo = a[j::step]
                hi = a[j + m :: step]
                w = tw[j]
                a[j::step] = [x + y for x, y in zip(lo, hi, strict=True)]
                if w == 1:
                    a[j + m :: step] = [x - y for x, y in zip(lo, hi, strict=True)]
                else:
                    a[j + m :: step] = [(x - y) * w % p for x, y in zip(lo, hi, strict=True)]
        m //= 2
    return [x % p for x in a]


def inverse_ntt_bit_reversed(evaluations: Sequence[int]) -> list[int]:
    """The inverse of ``ntt_bit_reversed``: evaluations at g^bitrev12(i) → 4096 coefficients."""
    n = FELTS_PER_BLOB
    if len(evaluations) != n:
        raise InvalidInput(f"the inverse blob transform takes exactly {n} values, got {len(evaluations)}")
    p = BLS_MODULUS
    a = list(evaluations)
    m = 1
    while m < n:
        step = 2 * m
        tw = _INVERSE_TWIDDLES[m]
        if m >= n // step:
            out: list[int] = []
            for k in range(0, n, step):
                lo = a[k : k + m]
                hi = [y * w % p for y, w in zip(a[k + m : k + step], tw, strict=True)]
                out += [x + t for x, t in zip(lo, hi, strict=True)]
                out += [x - t for x, t in zip(lo, hi, strict=True)]
            a = out
        else:
            for j in range(m):
                lo = a[j::step]
                w = tw[j]
                hi = a[j + m :: step] if w == 1 else [y * w % p for y in a[j + m :: step]]
                a[j::step] = [x + t for x, t in zip(lo, hi, strict=True)]
                a[j + m :: step] = [x - t for x, t in zip(lo, hi, strict=True)]
        m *= 2
    n_inv = _N_INVERSE
    return [x * n_inv % p for x in a]


def naive_evaluations(coefficients: Sequence[int], positions: Sequence[int]) -> list[int]:
    """The original O(n²) Horner evaluation at the given blob positions (a reference for tests)."""
    p = BLS_MODULUS
    out = []
    for i in positions:
        x = evaluation_point(i)
        acc = 0
        for c in reversed(coefficients):
            acc = (acc * x + c) % p
        out.append(acc)
    return out


# --------------------------------------------------------------------------------------------------
# Felts ↔ blob bytes


def felts_to_blobs(felts: Sequence[int], *, max_blobs: int | None = None) -> list[bytes]:
    """Pad to a multiple of 4096, transform each chunk, 131072 bytes a blob. Empty input → no blob.

    Raises ``MaxBlobsLimitExceeded`` when more than ``max_blobs`` blobs would be needed.
    """
    n = FELTS_PER_BLOB
    n_blobs = -(-len(felts) // n)
    if max_blobs is not None and n_blobs > max_blobs:
        raise MaxBlobsLimitExceeded(n_blobs, max_blobs, len(felts))
    p = BLS_MODULUS
    for index, value in enumerate(felts):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0 or value >= p:
            raise InvalidInput(
                f"felt #{index} ({value!r:.80}) is not an element of the BLS12-381 scalar field and cannot go in a blob"
            )
    blobs = []
    for start in range(0, len(felts), n):
        chunk = list(felts[start : start + n])
        chunk += [0] * (n - len(chunk))
        blobs.append(evaluations_to_blob(ntt_bit_reversed(chunk)))
    return blobs


def evaluations_to_blob(evaluations: Sequence[int]) -> bytes:
    return b"".join(v.to_bytes(BYTES_PER_FIELD_ELEMENT, "big") for v in evaluations)


def blob_to_evaluations(blob: bytes) -> list[int]:
    """The 4096 big-endian field elements of a blob, each checked to be below the BLS12-381 modulus."""
    if len(blob) != BYTES_PER_BLOB:
        raise InvalidBlob(f"a blob is {BYTES_PER_BLOB} bytes, got {len(blob)}")
    size = BYTES_PER_FIELD_ELEMENT
    values = [int.from_bytes(blob[i : i + size], "big") for i in range(0, BYTES_PER_BLOB, size)]
    p = BLS_MODULUS
    for index, value in enumerate(values):
        if value >= p:
            raise InvalidBlob(f"blob field element #{index} ({hex(value)}) is not below the BLS12-381 modulus")
    return values


def blob_to_felts(blob: bytes) -> list[int]:
    """The 4096 coefficients of a blob (the felts followed by the zero padding)."""
    return inverse_ntt_bit_reversed(blob_to_evaluations(blob))


def blobs_to_felts(blobs: Sequence[bytes]) -> list[int]:
    """All blobs' coefficients concatenated, trailing zeros (the padding) removed."""
    felts = [f for blob in blobs for f in blob_to_felts(blob)]
    return strip_trailing_zeros(felts)


def strip_trailing_zeros(felts: Sequence[int]) -> list[int]:
    end = len(felts)
    while end and felts[end - 1] == 0:
        end -= 1
    return list(felts[:end])


def blob_from_hex(text: str) -> bytes:
    """A blob from the vectors' hex form (262144 hex characters, optional ``0x``, whitespace ignored)."""
    cleaned = "".join(text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        blob = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise InvalidBlob(f"blob hex is not valid hexadecimal: {exc}") from None
    if len(blob) != BYTES_PER_BLOB:
        raise InvalidBlob(f"a blob is {BYTES_PER_BLOB} bytes ({2 * BYTES_PER_BLOB} hex characters), got {len(blob)}")
    return blob
