// hcl1json decodes HCL with Go's HCL1 (github.com/hashicorp/hcl v1, the parser Nomad's agent
// uses for its config files) and prints the result as JSON: the tests' truth parser.
//
//	hcl1json < file.hcl            one document: its decoded map on stdout, or the parse
//	                               error on stderr and exit status 1
//	hcl1json -batch < texts.json   a JSON list of documents: a JSON list of {"value": map}
//	                               or {"error": "..."} on stdout, one per document
//
// A decoded string that is not valid UTF-8 is reported as an error rather than letting
// encoding/json replace its bytes with U+FFFD silently.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"unicode/utf8"

	"github.com/hashicorp/hcl"
)

func decode(text string) (map[string]interface{}, error) {
	var out map[string]interface{}
	if err := hcl.Decode(&out, text); err != nil {
		return nil, err
	}
	if err := checkUTF8(out); err != nil {
		return nil, err
	}
	return out, nil
}

func checkUTF8(v interface{}) error {
	switch v := v.(type) {
	case string:
		if !utf8.ValidString(v) {
			return fmt.Errorf("decoded string is not valid UTF-8: %q", v)
		}
	case map[string]interface{}:
		for k, item := range v {
			if err := checkUTF8(k); err != nil {
				return err
			}
			if err := checkUTF8(item); err != nil {
				return err
			}
		}
	case []map[string]interface{}:
		for _, item := range v {
			if err := checkUTF8(item); err != nil {
				return err
			}
		}
	case []interface{}:
		for _, item := range v {
			if err := checkUTF8(item); err != nil {
				return err
			}
		}
	}
	return nil
}

type result struct {
	Value map[string]interface{} `json:"value,omitempty"`
	Error string                 `json:"error,omitempty"`
}

func main() {
	batch := flag.Bool("batch", false, "stdin is a JSON list of HCL documents")
	flag.Parse()
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetEscapeHTML(false)
	if !*batch {
		out, err := decode(string(input))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if out == nil {
			out = map[string]interface{}{}
		}
		if err := enc.Encode(out); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		return
	}
	var texts []string
	if err := json.Unmarshal(input, &texts); err != nil {
		fmt.Fprintln(os.Stderr, "batch input must be a JSON list of strings:", err)
		os.Exit(2)
	}
	results := make([]result, len(texts))
	for i, text := range texts {
		out, err := decode(text)
		if err != nil {
			results[i].Error = err.Error()
		} else if out == nil {
			results[i].Value = map[string]interface{}{}
		} else {
			results[i].Value = out
		}
	}
	if err := enc.Encode(results); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}
