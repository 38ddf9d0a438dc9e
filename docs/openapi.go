// Package docs ships the API description with the binary.
package docs

import (
	_ "embed"
	"encoding/json"
	"fmt"

	yaml "go.yaml.in/yaml/v3"
)

// OpenAPIYAML is docs/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte

// OpenAPIJSON converts OpenAPIYAML to JSON.
func OpenAPIJSON() ([]byte, error) {
	var doc any
	if err := yaml.Unmarshal(OpenAPIYAML, &doc); err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml: %w", err)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("docs/openapi.yaml to JSON: %w", err)
	}
	return b, nil
}
