#!/bin/sh
echo reset
