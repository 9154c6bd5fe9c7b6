#!/bin/sh
echo "$GREETING: app is here"
