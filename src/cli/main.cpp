#include "cli/commands.h"

int main(int argc, char** argv) { return histotrain::run_cli(argc, argv); }
