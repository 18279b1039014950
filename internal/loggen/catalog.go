package loggen

import (
	"math"
	"math/bits"
)

// Catalog is the synthetic shop's product list: which categories, price and sellers each
// product has, and which product holds each popularity rank. Every property is computed
// from a hash of the product id, so the catalog costs no memory however large it is, and
// the same seed always describes the same shop.
type Catalog struct {
	seed       uint64
	products   uint64
	categories uint64
	sellers    uint64

	// rank → product id is the affine bijection id = 1 + (mul·rank + add) mod products, so
	// the best sellers are spread over the id space instead of being ids 1, 2, 3…
	mul, add uint64
	// category index → category id, the same kind of bijection over the categories, so the
	// biggest categories are not simply the smallest ids.
	catMul, catAdd uint64
	// An alias table (Vose) draws a category index in O(1) with uneven weights, giving
	// categories of uneven size: the largest holds a few percent of the catalog, the
	// smallest a few hundredths of a percent.
	aliasProb []uint32 // threshold out of 2^32
	alias     []uint32
}

// categoryWeightExp shapes category sizes: index i has weight (i+1)^-categoryWeightExp, so
// with 1,000 categories the largest is about 250 times the smallest.
const categoryWeightExp = 0.8

// NewCatalog returns the catalog that cfg generates sales for.
func NewCatalog(cfg Config) *Catalog {
	cfg = cfg.WithDefaults()
	c := &Catalog{
		seed:       cfg.Seed,
		products:   uint64(cfg.Products),
		categories: uint64(cfg.Categories),
		sellers:    uint64(cfg.Sellers),
	}
	c.mul, c.add = affine(c.products, mix(cfg.Seed^0x9e3779b97f4a7c15))
	c.catMul, c.catAdd = affine(c.categories, mix(cfg.Seed^0xd1b54a32d192ed03))
	c.buildAlias()
	return c
}

// affine picks a multiplier coprime with n near n/φ, so that neighbouring ranks land far
// apart, and an offset from h.
func affine(n, h uint64) (mul, add uint64) {
	mul = uint64(float64(n)*0.6180339887498949) | 1
	if mul >= n {
		mul = n - 1
	}
	for mul > 1 && gcd(mul, n) != 1 {
		mul++
	}
	if mul == 0 {
		mul = 1
	}
	return mul, h % n
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mulAddMod returns (mul·x + add) mod n for mul, x, add < n, without overflow.
func mulAddMod(mul, x, add, n uint64) uint64 {
	hi, lo := bits.Mul64(mul, x)
	_, r := bits.Div64(hi, lo, n) // hi < n because mul, x < n
	r += add
	if r >= n || r < add {
		r -= n
	}
	return r
}

// ProductAt returns the id of the product with popularity rank r (0 is the best seller).
func (c *Catalog) ProductAt(r uint64) int64 {
	return int64(1 + mulAddMod(c.mul, r%c.products, c.add, c.products))
}

func (c *Catalog) buildAlias() {
	n := int(c.categories)
	w := make([]float64, n)
	var sum float64
	for i := range w {
		w[i] = math.Pow(float64(i+1), -categoryWeightExp)
		sum += w[i]
	}
	c.aliasProb = make([]uint32, n)
	c.alias = make([]uint32, n)
	small, large := make([]int, 0, n), make([]int, 0, n)
	for i := range w {
		w[i] *= float64(n) / sum
		if w[i] < 1 {
			small = append(small, i)
		} else {
			large = append(large, i)
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small = small[:len(small)-1]
		c.aliasProb[s] = uint32(w[s] * (1 << 32))
		c.alias[s] = uint32(l)
		w[l] -= 1 - w[s]
		if w[l] < 1 {
			large = large[:len(large)-1]
			small = append(small, l)
		}
	}
	// What is left has weight 1 up to rounding: always itself.
	for _, i := range append(small, large...) {
		c.aliasProb[i] = math.MaxUint32
		c.alias[i] = uint32(i)
	}
}

// categoryIndex draws an uneven category index from the hash h.
func (c *Catalog) categoryIndex(h uint64) uint64 {
	i := (h >> 32) % c.categories
	if uint32(h) < c.aliasProb[i] {
		return i
	}
	return uint64(c.alias[i])
}

// productHash is the hash every property of product id derives from.
func (c *Catalog) productHash(id int64) uint64 { return mix(uint64(id) ^ c.seed*0xbf58476d1ce4e5b9) }

// numCategories returns how many categories a product with hash ph is listed in: one for
// 60% of products, two for 30%, three for 10%, never more than there are categories.
func (c *Catalog) numCategories(ph uint64) int {
	n := 1
	switch v := ph % 10; {
	case v >= 9:
		n = 3
	case v >= 6:
		n = 2
	}
	if uint64(n) > c.categories {
		n = int(c.categories)
	}
	return n
}

// category returns the j-th category id of a product with hash ph (j < numCategories).
// The earlier ones are drawn again so that a product's categories are distinct.
func (c *Catalog) category(ph uint64, j int) int32 {
	var idx [3]uint64
	for k := 0; k <= j; k++ {
		i := c.categoryIndex(mix(ph + uint64(k+1)*0x94d049bb133111eb))
	retry:
		for _, prev := range idx[:k] {
			if prev == i {
				i = (i + 1) % c.categories
				goto retry
			}
		}
		idx[k] = i
	}
	return int32(1 + mulAddMod(c.catMul, idx[j], c.catAdd, c.categories))
}

// Categories returns the distinct categories (one to three) product id is listed in; a
// sale of the product names one of them.
func (c *Catalog) Categories(id int64) []int32 {
	ph := c.productHash(id)
	out := make([]int32, c.numCategories(ph))
	for j := range out {
		out[j] = c.category(ph, j)
	}
	return out
}

// priceLevels are unit prices in cents, spaced evenly on a log scale from 0.99 to 999.99,
// so cheap products are as common as dear ones by order of magnitude, as in a real shop.
var priceLevels = func() (p [256]int64) {
	for i := range p {
		p[i] = int64(math.Round(math.Pow(10, 2+3*float64(i)/255))) - 1
	}
	return p
}()

// UnitPrice returns product id's price in cents.
func (c *Catalog) UnitPrice(id int64) int64 { return c.unitPrice(c.productHash(id)) }

func (c *Catalog) unitPrice(ph uint64) int64 { return priceLevels[(ph>>8)&255] }

// numSellers returns how many sellers offer a product: one to four.
func (c *Catalog) numSellers(ph uint64) uint64 { return 1 + (ph>>16)&3 }

// seller returns the j-th seller of a product with hash ph.
func (c *Catalog) seller(ph, j uint64) int64 {
	return int64(1 + mix(ph^(j+1)*0xff51afd7ed558ccd)%c.sellers)
}

// mix is the splitmix64 finaliser: a cheap, well-spread 64-bit hash.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
