package event

// tsPattern is the pattern of schemas/event.json's timestamp definition, as
// the compiled schema reports it. A fastSchema node with exactly this
// pattern and format date-time is checked by timestampOK rather than by a
// regexp and the format's function: about a fifth of the direct path's time
// otherwise. Another pattern, or a changed one, simply takes the general
// route again.
const tsPattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`

// timestampOK reports whether s matches tsPattern and is a date-time in the
// sense of jsonschema's format validator: a real calendar date, hour at most
// 23, minute at most 59 (the pattern already bounds the second, so there is
// no leap second to consider) and an offset of at most 23:59. FuzzTimestamp
// holds it to the regexp and the format function.
func timestampOK(s string) bool {
	// yyyy-mm-ddThh:mm:ss, then an optional fraction and the offset.
	if len(s) < 20 || !digits(s[0:4]) || s[4] != '-' || !digits(s[5:7]) || s[7] != '-' ||
		!digits(s[8:10]) || s[10] != 'T' || !digits(s[11:13]) || s[13] != ':' ||
		!digits(s[14:16]) || s[16] != ':' || s[17] < '0' || s[17] > '5' || !isDigit(s[18]) {
		return false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && digits(rest[1:3]) && rest[3] == ':' && digits(rest[4:6]):
		if num2(rest[1:3]) > 23 || num2(rest[4:6]) > 59 {
			return false
		}
	default:
		return false
	}
	year := num2(s[0:2])*100 + num2(s[2:4])
	month, day := num2(s[5:7]), num2(s[8:10])
	if month < 1 || month > 12 || day < 1 || day > daysInMonth(month, year) {
		return false
	}
	return num2(s[11:13]) <= 23 && num2(s[14:16]) <= 59
}

// digits reports whether s is all ASCII digits.
func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// num2 is the value of two ASCII digits.
func num2(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// daysInMonth is the length of a month of the proleptic Gregorian calendar,
// as the time package counts it.
func daysInMonth(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}
