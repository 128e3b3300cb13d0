package httpx

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// DecodeJSON reads the body of r, at most limit bytes, as one JSON value
// into v, strictly: a member v has no field for (names match exactly,
// letter case included), a member given twice, and anything after the
// value are errors, so that no two readers of one body can see different
// requests. It returns the status to answer an error with (400, or 413
// past the limit) and an error that says what is wrong in JSON terms.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any, limit int64) (int, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	err := json.UnmarshalRead(body, v, json.RejectUnknownMembers(true))
	if err == nil {
		return 0, nil
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return http.StatusRequestEntityTooLarge, fmt.Errorf("body larger than %d bytes", limit)
	}
	return http.StatusBadRequest, fmt.Errorf("body: %w", jsonProblem(err))
}

// jsonProblem rewrites a decoding error in JSON terms, without Go types.
func jsonProblem(err error) error {
	var syn *jsontext.SyntacticError
	var sem *json.SemanticError
	switch {
	case errors.As(err, &syn) && errors.Is(syn.Err, jsontext.ErrDuplicateName):
		return fmt.Errorf("member %q given twice: give each member once", syn.JSONPointer.LastToken())
	case errors.As(err, &syn) && syn.ByteOffset == 0 && errors.Is(syn.Err, io.ErrUnexpectedEOF):
		return errors.New("empty: a JSON object is required")
	case errors.As(err, &syn):
		return fmt.Errorf("not valid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	case errors.As(err, &sem) && errors.Is(sem.Err, json.ErrUnknownName):
		return fmt.Errorf("unknown member %q", sem.JSONPointer.LastToken())
	case errors.As(err, &sem):
		return fmt.Errorf("%s must be %s, not %s", where(sem.JSONPointer), jsonKindOf(sem.GoType), kindName(sem.JSONKind))
	}
	return err
}

func where(p jsontext.Pointer) string {
	if p == "" {
		return "the body"
	}
	return fmt.Sprintf("member %q", string(p))
}

// jsonKindOf names what JSON a Go type takes.
func jsonKindOf(t reflect.Type) string {
	if t == nil {
		return "another kind of value"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return jsonKindOf(t.Elem())
	}
	return "another kind of value"
}

// kindName names a JSON kind with an article.
func kindName(k jsontext.Kind) string {
	switch k {
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "something else"
}
