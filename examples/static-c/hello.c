#include <stdio.h>

int main(void) {
	puts("hello from a static C program built by strata");
	return 0;
}
