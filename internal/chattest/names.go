package chattest

import "strconv"

// Usernames returns n distinct valid usernames: u0, u1, ...
func Usernames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "u" + strconv.Itoa(i)
	}
	return names
}
