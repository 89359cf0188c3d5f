// Package figures records measurements for the README's reliability section:
// tests append JSON lines to the file named by ARITMA_FIGURES, and
// scripts/reliability-report turns them into the table.
package figures

import (
	"encoding/json"
	"os"
	"sync"
)

var mu sync.Mutex

// Record appends {"figure": name, "value": value} to $ARITMA_FIGURES, if set.
func Record(name string, value interface{}) error {
	path := os.Getenv("ARITMA_FIGURES")
	if path == "" {
		return nil
	}
	line, err := json.Marshal(map[string]interface{}{"figure": name, "value": value})
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}
