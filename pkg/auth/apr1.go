package auth

import "crypto/md5"

const itoa64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// APR1 returns the Apache MD5-crypt hash ("$apr1$salt$…") of password
// with salt (at most 8 characters are used): Poul-Henning Kamp's FreeBSD
// md5crypt with the magic "$apr1$", as apr_md5_encode in APR's
// crypto/apr_md5.c computes it. MD5-crypt is weak; it is verified because
// htpasswd -m writes it, and bcrypt is what the README recommends.
func APR1(password, salt string) string {
	const magic = "$apr1$"
	if len(salt) > 8 {
		salt = salt[:8]
	}
	pw := []byte(password)
	alt := md5.Sum([]byte(password + salt + password))
	h := md5.New()
	h.Write(pw)
	h.Write([]byte(magic + salt))
	for i := len(pw); i > 0; i -= 16 {
		h.Write(alt[:min(16, i)])
	}
	for i := len(pw); i > 0; i >>= 1 {
		if i&1 != 0 {
			h.Write([]byte{0})
		} else {
			h.Write(pw[:1])
		}
	}
	final := h.Sum(nil)
	for i := range 1000 {
		h2 := md5.New()
		if i&1 != 0 {
			h2.Write(pw)
		} else {
			h2.Write(final)
		}
		if i%3 != 0 {
			h2.Write([]byte(salt))
		}
		if i%7 != 0 {
			h2.Write(pw)
		}
		if i&1 != 0 {
			h2.Write(final)
		} else {
			h2.Write(pw)
		}
		final = h2.Sum(nil)
	}
	out := make([]byte, 0, len(magic)+len(salt)+1+22)
	out = append(out, magic+salt+"$"...)
	to64 := func(v uint32, n int) {
		for ; n > 0; n-- {
			out = append(out, itoa64[v&0x3f])
			v >>= 6
		}
	}
	for _, g := range [][3]int{{0, 6, 12}, {1, 7, 13}, {2, 8, 14}, {3, 9, 15}, {4, 10, 5}} {
		to64(uint32(final[g[0]])<<16|uint32(final[g[1]])<<8|uint32(final[g[2]]), 4)
	}
	to64(uint32(final[11]), 2)
	return string(out)
}
