package kserve

import "math"

// Float16FromFloat64 converts f to IEEE 754 binary16 bits, rounding to nearest,
// ties to even. Values too large for binary16 become ±Inf (ok false); NaN
// stays NaN (ok false).
func Float16FromFloat64(f float64) (h uint16, ok bool) {
	bits := math.Float64bits(f)
	sign := uint16(bits>>48) & 0x8000
	exp := int((bits >> 52) & 0x7ff)
	mant := bits & (1<<52 - 1)
	if exp == 0x7ff {
		if mant != 0 {
			return sign | 0x7e00, false
		}
		return sign | 0x7c00, false
	}
	if exp == 0 && mant == 0 {
		return sign, true
	}
	// Unbiased exponent and the significand with its implicit bit (53 bits).
	e := exp - 1023
	sig := mant | 1<<52
	if exp == 0 { // float64 subnormal: far below binary16's range
		return sign, true
	}
	var shift int
	var hexp int
	if e >= -14 {
		// Normal binary16: keep 11 significant bits.
		shift = 52 - 10
		hexp = e + 15
	} else {
		// Subnormal binary16: the value is sig × 2^(e-52); units of 2^-24.
		shift = 52 - 10 + (-14 - e)
		hexp = 0
		if shift > 63 {
			return sign, true // rounds to zero
		}
	}
	q := sig >> uint(shift)
	rem := sig & (1<<uint(shift) - 1)
	half := uint64(1) << uint(shift-1)
	if rem > half || (rem == half && q&1 == 1) {
		q++
	}
	if hexp == 0 {
		// q is the subnormal significand; carrying into 1<<10 makes the
		// smallest normal, which the bit pattern expresses naturally.
		return sign | uint16(q), true
	}
	if q == 1<<11 { // rounding carried into the next binade
		q >>= 1
		hexp++
	}
	if hexp >= 31 {
		return sign | 0x7c00, false
	}
	return sign | uint16(hexp)<<10 | uint16(q&0x3ff), true
}

// Float16ToFloat64 converts IEEE 754 binary16 bits to a float64 (exactly).
func Float16ToFloat64(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp := int(h>>10) & 0x1f
	mant := float64(h & 0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 31:
		if mant != 0 {
			return math.NaN()
		}
		return math.Inf(int(sign))
	}
	return sign * math.Ldexp(1024+mant, exp-25)
}

// BFloat16ToFloat64 converts bfloat16 bits to a float64 (exactly).
func BFloat16ToFloat64(h uint16) float64 {
	return float64(math.Float32frombits(uint32(h) << 16))
}
