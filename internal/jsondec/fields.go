package jsondec

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"unicode"
)

// structType is what a struct type's fields are to JSON, as encoding/json
// works them out (its typeFields): the fields after Go's rules of
// embedding and encoding/json's of tags and dominance, by name.
type structType struct {
	fields []field
	byName map[string]int
}

// field is one JSON field of a struct type.
type field struct {
	name   string
	index  []int // the path of Field indexes to it
	tagged bool  // its name comes from a json tag
	quoted bool  // the tag has the ",string" option
}

// foldsTo reports whether key names a field only case-insensitively,
// which encoding/json accepts; the fast path leaves such a document to it.
func (st *structType) foldsTo(key string) bool {
	for _, f := range st.fields {
		if strings.EqualFold(f.name, key) {
			return true
		}
	}
	return false
}

// structOf returns t's structType, working it out the first time.
func (d *decoder) structOf(t reflect.Type) *structType {
	if st, ok := d.structs[t]; ok {
		return st
	}
	st := &structType{fields: typeFields(t), byName: map[string]int{}}
	for i, f := range st.fields {
		st.byName[f.name] = i
	}
	d.structs[t] = st
	return st
}

// typeFields lists the fields encoding/json decodes into for the struct
// type t: breadth first through untagged embedded structs, a field at a
// shallower depth hiding those deeper, a tagged one those untagged at its
// depth, and two alike at one depth hiding each other.
func typeFields(t reflect.Type) []field {
	type walk struct {
		typ   reflect.Type
		index []int
	}
	var fields []field
	next := []walk{{typ: t}}
	var count, nextCount map[reflect.Type]int
	visited := map[reflect.Type]bool{}
	for len(next) > 0 {
		current := next
		next = nil
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, w := range current {
			if visited[w.typ] {
				continue
			}
			visited[w.typ] = true
			for i := range w.typ.NumField() {
				sf := w.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validTag(name) {
					name = ""
				}
				index := append(slices.Clip(w.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					f := field{name: name, index: index, tagged: name != "", quoted: hasOpt(opts, "string")}
					if f.name == "" {
						f.name = sf.Name
					}
					fields = append(fields, f)
					if count[w.typ] > 1 {
						// The type is embedded twice at this depth:
						// the copy makes the two hide each other.
						fields = append(fields, f)
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, walk{typ: ft, index: index})
				}
			}
		}
	}
	slices.SortFunc(fields, func(a, b field) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(len(a.index), len(b.index)); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0]
	for i := 0; i < len(fields); {
		n := 1
		for i+n < len(fields) && fields[i+n].name == fields[i].name {
			n++
		}
		same := fields[i : i+n]
		if len(same) == 1 || len(same[0].index) != len(same[1].index) || same[0].tagged != same[1].tagged {
			out = append(out, same[0])
		}
		i += n
	}
	return out
}

// validTag is encoding/json's test of a tag's name; a name that fails it
// leaves the field its Go name.
func validTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}

// hasOpt reports whether the comma-separated tag options name opt.
func hasOpt(opts, opt string) bool {
	for o := range strings.SplitSeq(opts, ",") {
		if o == opt {
			return true
		}
	}
	return false
}
