//go:build tools

// Package tools pins the SeaweedFS command that dev/s3 builds (go build github.com/seaweedfs/seaweedfs/weed).
package tools

import _ "github.com/seaweedfs/seaweedfs/weed"
